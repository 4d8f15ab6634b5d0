/*
 * minisign public keys and signatures, read as the minisign tool writes them.
 *
 * Public key file:   "untrusted comment: ..." \n base64("Ed" || key id[8] || pk[32]) \n
 * Signature file:    "untrusted comment: ..." \n base64(alg[2] || key id[8] || sig[64]) \n
 *                    "trusted comment: TEXT" \n base64(global sig[64]) \n
 * alg "Ed" (legacy) signs the message itself, "ED" signs its BLAKE2b-512 digest; the
 * global signature covers sig[64] || TEXT, so the trusted comment cannot be edited.
 *
 * We are stricter than minisign where it is lax: exact base64 lengths with canonical
 * padding, nothing after the last line but empty lines, no NUL bytes, a printable
 * UTF-8 trusted comment. Line-length bounds are minisign's own (fgets buffers).
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include <hvpatch/policy.h>

#include "common/error.h"
#include "common/util.h"
#include "policy/internal.h"

#define ALG_LEGACY "Ed"
#define ALG_PREHASHED "ED"
#define ALG_BYTES 2
#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX "trusted comment: "
/* minisign reads comment lines with fgets into 1024 / 8192-byte buffers (newline + NUL). */
#define UNTRUSTED_LINE_MAX (1024 - 2)
#define TRUSTED_LINE_MAX (8192 - 2)

#define PK_BLOB_BYTES (ALG_BYTES + HVP_MINISIGN_KEY_ID_BYTES + HVP_MINISIGN_PUBLIC_KEY_BYTES)
#define SIG_BLOB_BYTES (ALG_BYTES + HVP_MINISIGN_KEY_ID_BYTES + HVP_MINISIGN_SIG_BYTES)

/* A cursor over the lines of a small text file. */
struct lines {
        const char *p, *end;
        unsigned lineno;
};

/*
 * Next line without its "\n" or "\r\n". A line with no newline is accepted only when
 * last_ok (the final line of a file may lack it). Bare CRs and NULs are malformed.
 */
static int next_line(struct lines *l, size_t max, bool last_ok, const char *what,
                     const char **ret, size_t *ret_len)
{
        const char *nl;
        size_t n;

        l->lineno++;
        if (l->p >= l->end)
                return hvp_fail(-EINVAL, "line %u: missing %s (file truncated)", l->lineno, what);
        nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
        if (!nl && !last_ok)
                return hvp_fail(-EINVAL, "line %u: %s has no end of line (file truncated)", l->lineno, what);
        n = (size_t)((nl ? nl : l->end) - l->p);
        if (n > 0 && l->p[n - 1] == '\r')
                n--;
        if (n > max)
                return hvp_fail(-EINVAL, "line %u: %s longer than %zu bytes", l->lineno, what, max);
        if (memchr(l->p, '\r', n) || memchr(l->p, '\0', n))
                return hvp_fail(-EINVAL, "line %u: %s holds a CR or NUL byte", l->lineno, what);
        *ret = l->p;
        *ret_len = n;
        l->p = nl ? nl + 1 : l->end;
        return 0;
}

/* After the last line: only empty lines ("\n" or "\r\n"). */
static int expect_end(struct lines *l)
{
        const char *p = l->p;

        while (p < l->end) {
                if (*p == '\n') {
                        p++;
                } else if (*p == '\r' && p + 1 < l->end && p[1] == '\n') {
                        p += 2;
                } else {
                        return hvp_fail(-EINVAL, "line %u: unexpected data after the last line",
                                        l->lineno + 1);
                }
        }
        return 0;
}

static bool b64_char(char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Exactly one canonical, padded base64 encoding of exactly want bytes. */
static int decode_b64(const char *b64, size_t len, uint8_t *out, size_t want, const char *what,
                      unsigned lineno)
{
        size_t expect = sodium_base64_ENCODED_LEN(want, sodium_base64_VARIANT_ORIGINAL) - 1;
        size_t pad = (3 - want % 3) % 3;
        const char *end = NULL;
        size_t got = 0;

        if (len != expect)
                return hvp_fail(-EINVAL, "line %u: %s is %zu base64 characters, expected %zu",
                                lineno, what, len, expect);
        /*
         * libsodium 1.0.18's decoder takes every byte >= 0x80 for a base64 digit (found by
         * test-minisign's differential test against minisign): check the alphabet ourselves.
         */
        for (size_t i = 0; i < len; i++)
                if (i < len - pad ? !b64_char(b64[i]) : b64[i] != '=')
                        return hvp_fail(-EINVAL, "line %u: %s holds a character that is not base64 at column %zu",
                                        lineno, what, i + 1);
        if (sodium_base642bin(out, want, b64, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            end != b64 + len || got != want)
                return hvp_fail(-EINVAL, "line %u: %s is not valid base64", lineno, what);
        return 0;
}

static int expect_prefix(const char *line, size_t len, const char *prefix, unsigned lineno)
{
        size_t n = strlen(prefix);

        if (len < n || memcmp(line, prefix, n) != 0)
                return hvp_fail(-EINVAL, "line %u: does not start with \"%s\"", lineno, prefix);
        return 0;
}

/* Printable UTF-8: no control characters but tab, no overlongs, surrogates or C1 controls. */
static bool printable_utf8(const uint8_t *s, size_t n)
{
        size_t i = 0;

        while (i < n) {
                uint8_t c = s[i];
                uint32_t cp, min;
                size_t need;

                if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        need = 1, cp = c & 0x1f, min = 0x80;
                } else if (c >= 0xe0 && c <= 0xef) {
                        need = 2, cp = c & 0x0f, min = 0x800;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        need = 3, cp = c & 0x07, min = 0x10000;
                } else {
                        return false;
                }
                if (n - i - 1 < need)
                        return false;
                for (size_t k = 1; k <= need; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
                        return false;
                i += need + 1;
        }
        return true;
}

void hvp_minisign_key_id_hex(const uint8_t key_id[HVP_MINISIGN_KEY_ID_BYTES], char out[17])
{
        static const char digits[] = "0123456789ABCDEF";

        /* minisign prints the key id as a little-endian u64: last byte first. */
        for (int i = 0; i < HVP_MINISIGN_KEY_ID_BYTES; i++) {
                uint8_t b = key_id[HVP_MINISIGN_KEY_ID_BYTES - 1 - i];

                out[2 * i] = digits[b >> 4];
                out[2 * i + 1] = digits[b & 15];
        }
        out[16] = '\0';
}

static int key_from_b64(const char *b64, size_t len, unsigned lineno, struct hvp_minisign_key *ret_key)
{
        uint8_t blob[PK_BLOB_BYTES];
        struct hvp_minisign_key k = { 0 };
        int r;

        r = decode_b64(b64, len, blob, sizeof(blob), "public key", lineno);
        if (r < 0)
                return r;
        if (memcmp(blob, ALG_LEGACY, ALG_BYTES) != 0)
                return hvp_fail(-EINVAL, "line %u: public key algorithm is not Ed25519 (\"Ed\")", lineno);
        memcpy(k.key_id, blob + ALG_BYTES, sizeof(k.key_id));
        memcpy(k.pk, blob + ALG_BYTES + sizeof(k.key_id), sizeof(k.pk));
        *ret_key = k;
        return 0;
}

int hvp_minisign_key_from_base64(const char *b64, struct hvp_minisign_key *ret_key)
{
        if (!b64)
                return hvp_fail(-EINVAL, "no public key given");
        return key_from_b64(b64, strnlen(b64, 128), 1, ret_key);
}

/* The first line of both file kinds: "untrusted comment: ...", whose text nothing trusts. */
static int skip_untrusted_comment(struct lines *l)
{
        const char *line;
        size_t n;
        int r;

        r = next_line(l, UNTRUSTED_LINE_MAX, false, "untrusted comment", &line, &n);
        if (r < 0)
                return r;
        return expect_prefix(line, n, UNTRUSTED_PREFIX, l->lineno);
}

int hvp_minisign_key_parse(const void *text, size_t len, struct hvp_minisign_key *ret_key)
{
        struct lines l = { .p = text, .end = (const char *)text + len };
        const char *line;
        size_t n;
        int r;

        if (len > HVP_MINISIGN_KEY_FILE_MAX)
                return hvp_fail(-E2BIG, "public key file larger than %u bytes", HVP_MINISIGN_KEY_FILE_MAX);
        r = skip_untrusted_comment(&l);
        if (r < 0)
                return r;
        r = next_line(&l, 128, true, "public key", &line, &n);
        if (r < 0)
                return r;
        r = expect_end(&l);
        if (r < 0)
                return r;
        return key_from_b64(line, n, l.lineno, ret_key);
}

int hvp_minisign_key_load(const char *path, struct hvp_minisign_key *ret_key)
{
        _cleanup_free_ void *buf = NULL;
        size_t len;
        int r;

        r = hvp_read_file_bounded(path, HVP_MINISIGN_KEY_FILE_MAX, &buf, &len);
        if (r < 0)
                return r;
        r = hvp_minisign_key_parse(buf, len, ret_key);
        if (r < 0)
                return hvp_fail_context(r, "%s", path);
        return 0;
}

int hvp_minisig_parse(const void *text, size_t len, struct hvp_minisig *ret_sig)
{
        struct lines l = { .p = text, .end = (const char *)text + len };
        uint8_t blob[SIG_BLOB_BYTES];
        struct hvp_minisig s;
        const char *line;
        size_t n, tn;
        int r;

        if (len > HVP_MINISIGN_SIG_FILE_MAX)
                return hvp_fail(-E2BIG, "signature file larger than %u bytes", HVP_MINISIGN_SIG_FILE_MAX);
        r = skip_untrusted_comment(&l);
        if (r < 0)
                return r;

        r = next_line(&l, 128, false, "signature", &line, &n);
        if (r < 0)
                return r;
        r = decode_b64(line, n, blob, sizeof(blob), "signature", l.lineno);
        if (r < 0)
                return r;
        if (memcmp(blob, ALG_PREHASHED, ALG_BYTES) == 0)
                s.prehashed = true;
        else if (memcmp(blob, ALG_LEGACY, ALG_BYTES) == 0)
                s.prehashed = false;
        else
                return hvp_fail(-EINVAL, "line %u: unknown signature algorithm (neither \"Ed\" nor \"ED\")",
                                l.lineno);
        memcpy(s.key_id, blob + ALG_BYTES, sizeof(s.key_id));
        memcpy(s.sig, blob + ALG_BYTES + sizeof(s.key_id), sizeof(s.sig));

        r = next_line(&l, TRUSTED_LINE_MAX, false, "trusted comment", &line, &n);
        if (r < 0)
                return r;
        r = expect_prefix(line, n, TRUSTED_PREFIX, l.lineno);
        if (r < 0)
                return r;
        tn = n - strlen(TRUSTED_PREFIX);
        if (tn > HVP_MINISIGN_TRUSTED_COMMENT_MAX)
                return hvp_fail(-EINVAL, "line %u: trusted comment longer than %d bytes", l.lineno,
                                HVP_MINISIGN_TRUSTED_COMMENT_MAX);
        if (!printable_utf8((const uint8_t *)line + strlen(TRUSTED_PREFIX), tn))
                return hvp_fail(-EINVAL, "line %u: trusted comment holds control characters or bad UTF-8",
                                l.lineno);
        memcpy(s.trusted_comment, line + strlen(TRUSTED_PREFIX), tn);
        s.trusted_comment[tn] = '\0';

        r = next_line(&l, 128, true, "global signature", &line, &n);
        if (r < 0)
                return r;
        r = decode_b64(line, n, s.global_sig, sizeof(s.global_sig), "global signature", l.lineno);
        if (r < 0)
                return r;
        r = expect_end(&l);
        if (r < 0)
                return r;
        *ret_sig = s;
        return 0;
}

static const struct hvp_minisign_key *find_key(const struct hvp_minisign_key *keys, size_t n_keys,
                                               const uint8_t key_id[HVP_MINISIGN_KEY_ID_BYTES],
                                               size_t *ret_index)
{
        const struct hvp_minisign_key *found = NULL;

        /* Look at every key whatever matched, in constant time per key. */
        for (size_t i = 0; i < n_keys; i++) {
                if (sodium_memcmp(keys[i].key_id, key_id, HVP_MINISIGN_KEY_ID_BYTES) == 0 && !found) {
                        found = &keys[i];
                        *ret_index = i;
                }
        }
        return found;
}

static int verify_parsed(const struct hvp_minisign_key *keys, size_t n_keys, const void *msg, size_t msg_len,
                         const struct hvp_minisig *s, unsigned flags, struct hvp_signature_info *ret)
{
        const struct hvp_minisign_key *key;
        uint8_t digest[crypto_generichash_BYTES_MAX];
        _cleanup_free_ uint8_t *signed_comment = NULL;
        size_t tn = strlen(s->trusted_comment), index = 0;
        char hex[17];
        int r;

        if (sodium_init() < 0)
                return hvp_fail(-EIO, "libsodium failed to initialize");
        hvp_minisign_key_id_hex(s->key_id, hex);
        key = find_key(keys, n_keys, s->key_id, &index);
        if (!key)
                return hvp_fail(-ENOKEY, "signed by key %s, which is not a trusted key", hex);
        if (!s->prehashed && (flags & HVP_MINISIGN_REQUIRE_PREHASHED))
                return hvp_fail(-EKEYREJECTED, "legacy (not prehashed) signature refused");

        if (s->prehashed) {
                crypto_generichash(digest, sizeof(digest), msg, msg_len, NULL, 0);
                r = crypto_sign_verify_detached(s->sig, digest, sizeof(digest), key->pk);
        } else {
                r = crypto_sign_verify_detached(s->sig, msg, msg_len, key->pk);
        }
        if (r != 0)
                return hvp_fail(-EKEYREJECTED, "the signature over the file does not verify with key %s%s%s%s",
                                hex, key->name[0] ? " (" : "", key->name, key->name[0] ? ")" : "");

        signed_comment = malloc(sizeof(s->sig) + tn);
        if (!signed_comment)
                return hvp_fail(-ENOMEM, "out of memory");
        memcpy(signed_comment, s->sig, sizeof(s->sig));
        memcpy(signed_comment + sizeof(s->sig), s->trusted_comment, tn);
        if (crypto_sign_verify_detached(s->global_sig, signed_comment, sizeof(s->sig) + tn, key->pk) != 0)
                return hvp_fail(-EKEYREJECTED,
                                "the signature over the trusted comment does not verify with key %s", hex);

        memcpy(ret->key_id, s->key_id, sizeof(ret->key_id));
        memcpy(ret->key_id_hex, hex, sizeof(hex));
        memcpy(ret->key_name, key->name, sizeof(ret->key_name));
        ret->key_index = index;
        ret->prehashed = s->prehashed;
        memcpy(ret->trusted_comment, s->trusted_comment, tn + 1);
        return 0;
}

int hvp_minisign_verify(const struct hvp_minisign_key *keys, size_t n_keys,
                        const void *msg, size_t msg_len, const void *sig, size_t sig_len,
                        unsigned flags, struct hvp_signature_info *ret)
{
        _cleanup_free_ struct hvp_minisig *s = NULL;
        int r;

        if (!ret || (!msg && msg_len) || !sig)
                return hvp_fail(-EINVAL, "missing argument");
        s = malloc(sizeof(*s));
        if (!s)
                return hvp_fail(-ENOMEM, "out of memory");
        r = hvp_minisig_parse(sig, sig_len, s);
        if (r < 0)
                return hvp_fail_context(r, "signature file");
        return verify_parsed(keys, n_keys, msg ? msg : "", msg_len, s, flags, ret);
}

int hvp_minisign_verify_file(const struct hvp_minisign_key *keys, size_t n_keys,
                             const char *msg_path, const char *sig_path, unsigned flags,
                             struct hvp_signature_info *ret)
{
        _cleanup_free_ char *default_sig = NULL;
        _cleanup_free_ void *msg = NULL, *sig = NULL;
        size_t msg_len, sig_len;
        int r;

        if (!sig_path) {
                if (asprintf(&default_sig, "%s.minisig", msg_path) < 0) {
                        default_sig = NULL;
                        return hvp_fail(-ENOMEM, "out of memory");
                }
                sig_path = default_sig;
        }
        r = hvp_read_file_bounded(msg_path, HVP_BUNDLE_MAX, &msg, &msg_len);
        if (r < 0)
                return r;
        r = hvp_read_file_bounded(sig_path, HVP_MINISIGN_SIG_FILE_MAX, &sig, &sig_len);
        if (r == -ENOENT)
                return hvp_fail(-ENOKEY, "%s is not signed: no signature file %s", msg_path, sig_path);
        if (r < 0)
                return r;
        r = hvp_minisign_verify(keys, n_keys, msg, msg_len, sig, sig_len, flags, ret);
        if (r < 0)
                return hvp_fail_context(r, "%s", sig_path);
        return 0;
}
