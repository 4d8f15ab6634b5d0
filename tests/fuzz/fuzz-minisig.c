/* Fuzz the minisign signature and public key parsers, and verification up to the cryptography. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <hvpatch/policy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct hvp_minisig sig;
        static struct hvp_signature_info info;
        struct hvp_minisign_key key;
        /* A fixed trusted key whose id is the one in the seed signatures. */
        static const char pub[] = "RWS2DNUq/hjp5d4s5Dnkp3y8BvaSXogt9pXL1AjHcZGCAfAkg82/ysqn";
        static const char msg[] = "hello\n";

        hvp_minisig_parse(data, size, &sig);
        hvp_minisign_key_parse(data, size, &key);
        if (hvp_minisign_key_from_base64(pub, &key) == 0)
                hvp_minisign_verify(&key, 1, msg, strlen(msg), data, size, 0, &info);
        return 0;
}
