/*
 * minisign verification against the real minisign tool: keys and signatures are made
 * by `minisign` at test time, every bad input is derived from a good one, and
 * `minisign -V` judges each case too (an oracle hvpatch does not control).
 *
 * hvpatch is stricter than minisign in a few documented ways (data after the last
 * line, non-canonical base64): there we require only that hvpatch refuses. Everywhere
 * else both must agree, and hvpatch must never accept what minisign refuses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/shell.h"
#include <sodium.h>

#include <hvpatch/hvpatch.h>
#include <hvpatch/policy.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MSG_SIZE (3 * 65536 + 123)      /* spans several of minisign's 64 KiB hashing reads */
#define TRUSTED "release 2024-06 build=42\tcve=CVE-2024-1086 ünïcode"

static char dir[256];
static struct hvp_minisign_key key_a, key_b;    /* a is trusted; b is another signer */
static char key_a_hex[17], key_b_hex[17];
static uint8_t *msg;
static char *sig_hashed, *sig_legacy, *sig_by_b;
static size_t sig_hashed_len, sig_legacy_len, sig_by_b_len;
static unsigned oracle_runs;

static char *path(const char *name)
{
        static char buf[4][512];
        static int i;

        i = (i + 1) % 4;
        snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
        return buf[i];
}

static void write_file(const char *p, const void *data, size_t len)
{
        FILE *f = fopen(p, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *p, size_t *ret_len)
{
        char *data = malloc(1 << 16);
        FILE *f = fopen(p, "rb");
        size_t len;

        assert_non_null(f);
        len = fread(data, 1, (1 << 16) - 1, f);
        fclose(f);
        data[len] = '\0';
        *ret_len = len;
        return data;
}

/* The key id minisign itself wrote into the public key's comment line, as 16 hex digits. */
static void key_id_from_comment(const char *pubfile, char out[17])
{
        size_t len;
        char *text = read_file(pubfile, &len);
        const char *p = strstr(text, "minisign public key ");

        assert_non_null(p);
        /* minisign 0.11 prints the id without leading zeros, 0.12 with: compare as numbers. */
        snprintf(out, 17, "%016llX", strtoull(p + strlen("minisign public key "), NULL, 16));
        free(text);
}

static int setup(void **state)
{
        const char *tmp = getenv("TMPDIR");

        if (run("command -v minisign >/dev/null") != 0) {
                fprintf(stderr, "minisign is not installed (Debian package minisign)\n");
                return -1;
        }
        if (sodium_init() < 0)
                return -1;
        snprintf(dir, sizeof(dir), "%s/hvp-minisign-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(dir))
                return -1;
        if (run("cd %s && minisign -G -W -p a.pub -s a.key </dev/null >/dev/null 2>&1", dir) ||
            run("cd %s && minisign -G -W -p b.pub -s b.key </dev/null >/dev/null 2>&1", dir))
                return -1;
        msg = malloc(MSG_SIZE);
        randombytes_buf(msg, MSG_SIZE);
        write_file(path("bundle.hvp"), msg, MSG_SIZE);
        if (run("cd %s && minisign -S -s a.key -m bundle.hvp -x hashed.minisig -t '%s' </dev/null >/dev/null",
                dir, TRUSTED) ||
            run("cd %s && minisign -S -l -s a.key -m bundle.hvp -x legacy.minisig -t '%s' </dev/null >/dev/null",
                dir, TRUSTED) ||
            run("cd %s && minisign -S -s b.key -m bundle.hvp -x by-b.minisig </dev/null >/dev/null", dir))
                return -1;
        sig_hashed = read_file(path("hashed.minisig"), &sig_hashed_len);
        sig_legacy = read_file(path("legacy.minisig"), &sig_legacy_len);
        sig_by_b = read_file(path("by-b.minisig"), &sig_by_b_len);
        if (hvp_minisign_key_load(path("a.pub"), &key_a) < 0 || hvp_minisign_key_load(path("b.pub"), &key_b) < 0)
                return -1;
        strcpy(key_a.name, "release");
        strcpy(key_b.name, "other");
        key_id_from_comment(path("a.pub"), key_a_hex);
        key_id_from_comment(path("b.pub"), key_b_hex);
        *state = NULL;
        return 0;
}

static int teardown(void **state)
{
        run("rm -rf '%s'", dir);
        free(msg);
        free(sig_hashed);
        free(sig_legacy);
        free(sig_by_b);
        printf("minisign oracle consulted %u times\n", oracle_runs);
        return 0;
}

/* minisign -V on these exact bytes (with -H when prehashed signatures are required). */
static bool minisign_accepts(const char *pubfile, const void *m, size_t mlen, const void *s, size_t slen,
                             unsigned flags)
{
        char mpath[512], spath[512];

        snprintf(mpath, sizeof(mpath), "%s/case.msg", dir);
        snprintf(spath, sizeof(spath), "%s/case.minisig", dir);
        write_file(mpath, m, mlen);
        write_file(spath, s, slen);
        oracle_runs++;
        return run("minisign -V -q %s -p '%s' -m '%s' -x '%s' >/dev/null 2>&1",
                   flags & HVP_MINISIGN_REQUIRE_PREHASHED ? "-H" : "", pubfile, mpath, spath) == 0;
}

enum oracle { AGREE, STRICTER };

/* Verify with keys; check the code; ask minisign (with the trusted key a) and compare. */
static int check_case(const char *what, const struct hvp_minisign_key *keys, size_t n, const void *m, size_t mlen,
                      const void *s, size_t slen, unsigned flags, int expect, enum oracle oracle)
{
        struct hvp_signature_info info;
        bool ours, theirs;
        int r;

        memset(&info, 0xa5, sizeof(info));
        r = hvp_minisign_verify(keys, n, m, mlen, s, slen, flags, &info);
        if (r != expect)
                fail_msg("%s: got %d (%s), expected %d", what, r, hvp_last_error(), expect);
        ours = r == 0;
        theirs = minisign_accepts(path("a.pub"), m, mlen, s, slen, flags);
        if (oracle == AGREE && ours != theirs)
                fail_msg("%s: hvpatch %s, minisign %s", what, ours ? "accepts" : "refuses",
                         theirs ? "accepts" : "refuses");
        if (ours && !theirs)
                fail_msg("%s: hvpatch accepts what minisign refuses", what);
        return r;
}

static void test_valid_signatures(void **state)
{
        struct hvp_signature_info info;
        struct hvp_minisign_key keys[2] = { key_b, key_a };

        assert_int_equal(check_case("prehashed", &key_a, 1, msg, MSG_SIZE, sig_hashed, sig_hashed_len, 0, 0, AGREE), 0);
        assert_int_equal(hvp_minisign_verify(keys, 2, msg, MSG_SIZE, sig_hashed, sig_hashed_len, 0, &info), 0);
        assert_true(info.prehashed);
        assert_string_equal(info.key_id_hex, key_a_hex);
        assert_string_equal(info.key_name, "release");
        assert_int_equal(info.key_index, 1);
        assert_string_equal(info.trusted_comment, TRUSTED);

        assert_int_equal(check_case("legacy", &key_a, 1, msg, MSG_SIZE, sig_legacy, sig_legacy_len, 0, 0, AGREE), 0);
        assert_int_equal(hvp_minisign_verify(&key_a, 1, msg, MSG_SIZE, sig_legacy, sig_legacy_len, 0, &info), 0);
        assert_false(info.prehashed);
        assert_string_equal(info.trusted_comment, TRUSTED);

        /* minisign -H and our flag both refuse a legacy signature. */
        check_case("legacy with -H", &key_a, 1, msg, MSG_SIZE, sig_legacy, sig_legacy_len,
                   HVP_MINISIGN_REQUIRE_PREHASHED, -EKEYREJECTED, AGREE);
        check_case("prehashed with -H", &key_a, 1, msg, MSG_SIZE, sig_hashed, sig_hashed_len,
                   HVP_MINISIGN_REQUIRE_PREHASHED, 0, AGREE);
}

static void test_verify_file(void **state)
{
        struct hvp_signature_info info;

        assert_int_equal(hvp_minisign_verify_file(&key_a, 1, path("bundle.hvp"), path("hashed.minisig"), 0, &info), 0);
        assert_string_equal(info.trusted_comment, TRUSTED);
        /* Default signature path: BUNDLE.minisig, absent here: unsigned. */
        assert_int_equal(hvp_minisign_verify_file(&key_a, 1, path("bundle.hvp"), NULL, 0, &info), -ENOKEY);
        assert_non_null(strstr(hvp_last_error(), "not signed"));
        write_file(path("bundle.hvp.minisig"), sig_legacy, sig_legacy_len);
        assert_int_equal(hvp_minisign_verify_file(&key_a, 1, path("bundle.hvp"), NULL, 0, &info), 0);
        assert_int_equal(hvp_minisign_verify_file(&key_a, 1, path("nonexistent"), NULL, 0, &info), -ENOENT);
}

/* One flipped bit in the message, at several places, for both algorithms. */
static void test_message_bit_flips(void **state)
{
        static const size_t where[] = { 0, 1, 4095, 65535, 65536, MSG_SIZE / 2, MSG_SIZE - 1 };
        uint8_t *m = malloc(MSG_SIZE);

        for (size_t i = 0; i < N_ELEMS(where); i++) {
                for (int alg = 0; alg < 2; alg++) {
                        char what[64];

                        memcpy(m, msg, MSG_SIZE);
                        m[where[i]] ^= (uint8_t)(1u << (i % 8));
                        snprintf(what, sizeof(what), "%s, message bit flip at %zu", alg ? "legacy" : "prehashed",
                                 where[i]);
                        check_case(what, &key_a, 1, m, MSG_SIZE, alg ? sig_legacy : sig_hashed,
                                   alg ? sig_legacy_len : sig_hashed_len, 0, -EKEYREJECTED, AGREE);
                        assert_non_null(strstr(hvp_last_error(), "signature over the file"));
                }
        }
        /* Appending or dropping one byte changes the message too. */
        check_case("message one byte short", &key_a, 1, msg, MSG_SIZE - 1, sig_hashed, sig_hashed_len, 0,
                   -EKEYREJECTED, AGREE);
        memcpy(m, msg, MSG_SIZE);
        check_case("empty message", &key_a, 1, m, 0, sig_hashed, sig_hashed_len, 0, -EKEYREJECTED, AGREE);
        free(m);
}

/* Line n (0-based) of a signature file: start and length without the newline. */
static void find_line(const char *s, size_t len, int n, size_t *ret_off, size_t *ret_len)
{
        size_t off = 0;

        for (int i = 0; i < n; i++) {
                const char *nl = memchr(s + off, '\n', len - off);

                assert_non_null(nl);
                off = (size_t)(nl - s) + 1;
        }
        const char *nl = memchr(s + off, '\n', len - off);
        *ret_off = off;
        *ret_len = nl ? (size_t)(nl - s) - off : len - off;
}

/* A copy of sig whose base64 line n decodes to blob with bit `bit` of byte `byte` flipped. */
static char *flip_decoded(const char *sig, size_t len, int n, size_t byte, int bit, size_t *ret_len)
{
        uint8_t blob[128];
        size_t off, llen, blen;
        char *copy = malloc(len + 1);

        find_line(sig, len, n, &off, &llen);
        assert_int_equal(sodium_base642bin(blob, sizeof(blob), sig + off, llen, NULL, &blen, NULL,
                                           sodium_base64_VARIANT_ORIGINAL), 0);
        assert_true(byte < blen);
        blob[byte] ^= (uint8_t)(1u << bit);
        memcpy(copy, sig, len + 1);
        sodium_bin2base64(copy + off, llen + 1, blob, blen, sodium_base64_VARIANT_ORIGINAL);
        copy[off + llen] = sig[off + llen];     /* the newline bin2base64's NUL overwrote */
        *ret_len = len;
        return copy;
}

static void test_signature_bit_flips(void **state)
{
        for (size_t byte = 0; byte < 74; byte++) {
                char what[64];
                size_t len;
                char *s = flip_decoded(sig_hashed, sig_hashed_len, 1, byte, (int)(byte % 8), &len);
                int expect;

                /* alg[2] || key id[8] || sig[64] */
                if (byte < 2)
                        expect = -EINVAL;       /* no such algorithm ("Ed"^bit is not "ED" here) */
                else if (byte < 10)
                        expect = -ENOKEY;
                else
                        expect = -EKEYREJECTED;
                snprintf(what, sizeof(what), "signature byte %zu flipped", byte);
                check_case(what, &key_a, 1, msg, MSG_SIZE, s, len, 0, expect, AGREE);
                free(s);
        }
        for (size_t byte = 0; byte < 64; byte++) {
                char what[64];
                size_t len;
                char *s = flip_decoded(sig_hashed, sig_hashed_len, 3, byte, (int)(byte * 3 % 8), &len);

                snprintf(what, sizeof(what), "global signature byte %zu flipped", byte);
                check_case(what, &key_a, 1, msg, MSG_SIZE, s, len, 0, -EKEYREJECTED, AGREE);
                assert_non_null(strstr(hvp_last_error(), "trusted comment"));
                free(s);
        }
}

/* "ED" <-> "Ed": the same signature bytes claimed under the other algorithm. */
static void test_algorithm_confusion(void **state)
{
        size_t len;
        char *s;

        /* 'D' ^ 'd' is bit 5 of byte 1. */
        s = flip_decoded(sig_hashed, sig_hashed_len, 1, 1, 5, &len);
        check_case("prehashed signature relabelled legacy", &key_a, 1, msg, MSG_SIZE, s, len, 0, -EKEYREJECTED, AGREE);
        free(s);
        s = flip_decoded(sig_legacy, sig_legacy_len, 1, 1, 5, &len);
        check_case("legacy signature relabelled prehashed", &key_a, 1, msg, MSG_SIZE, s, len, 0, -EKEYREJECTED, AGREE);
        free(s);
}

static void test_truncated_and_padded(void **state)
{
        char *s = malloc(sig_hashed_len + 64);

        for (size_t cut = 0; cut < sig_hashed_len; cut++) {
                char what[64];
                /* Dropping only the final newline leaves a complete file. */
                int expect = cut == sig_hashed_len - 1 ? 0 : -EINVAL;

                snprintf(what, sizeof(what), "signature file cut to %zu bytes", cut);
                check_case(what, &key_a, 1, msg, MSG_SIZE, sig_hashed, cut, 0, expect, AGREE);
        }
        static const struct {
                const char *tail;
                int expect;
                enum oracle oracle;
        } pads[] = {
                { "\n", 0, AGREE },
                { "\n\n\r\n", 0, AGREE },
                { "x", -EINVAL, STRICTER },
                { "untrusted comment: more\n", -EINVAL, STRICTER },
                { " ", -EINVAL, STRICTER },
                { "\0", -EINVAL, STRICTER },
        };
        for (size_t i = 0; i < N_ELEMS(pads); i++) {
                size_t tl = pads[i].tail[0] ? strlen(pads[i].tail) : 1;

                memcpy(s, sig_hashed, sig_hashed_len);
                memcpy(s + sig_hashed_len, pads[i].tail, tl);
                check_case("padded signature file", &key_a, 1, msg, MSG_SIZE, s, sig_hashed_len + tl, 0,
                           pads[i].expect, pads[i].oracle);
        }
        free(s);
}

static char *replace_line(const char *sig, size_t len, int n, const char *line, size_t *ret_len)
{
        size_t off, llen, nl = strlen(line);
        char *out = malloc(len + nl + 1);

        find_line(sig, len, n, &off, &llen);
        memcpy(out, sig, off);
        memcpy(out + off, line, nl);
        memcpy(out + off + nl, sig + off + llen, len - off - llen);
        *ret_len = len - llen + nl;
        out[*ret_len] = '\0';
        return out;
}

static void test_edited_comments(void **state)
{
        size_t len;
        char *s;

        s = replace_line(sig_hashed, sig_hashed_len, 2, "trusted comment: release 2024-06 build=43", &len);
        check_case("edited trusted comment", &key_a, 1, msg, MSG_SIZE, s, len, 0, -EKEYREJECTED, AGREE);
        assert_non_null(strstr(hvp_last_error(), "trusted comment"));
        free(s);
        s = replace_line(sig_hashed, sig_hashed_len, 2, "trusted comment: " TRUSTED " ", &len);
        check_case("trusted comment with a trailing space", &key_a, 1, msg, MSG_SIZE, s, len, 0, -EKEYREJECTED, AGREE);
        free(s);
        s = replace_line(sig_hashed, sig_hashed_len, 2, "trusted  comment: " TRUSTED, &len);
        check_case("trusted comment prefix damaged", &key_a, 1, msg, MSG_SIZE, s, len, 0, -EINVAL, AGREE);
        free(s);
        /* The untrusted comment is not signed: editing it changes nothing. */
        s = replace_line(sig_hashed, sig_hashed_len, 0, "untrusted comment: anything at all", &len);
        check_case("edited untrusted comment", &key_a, 1, msg, MSG_SIZE, s, len, 0, 0, AGREE);
        free(s);
        s = replace_line(sig_hashed, sig_hashed_len, 0, "untrusted: x", &len);
        check_case("untrusted comment prefix missing", &key_a, 1, msg, MSG_SIZE, s, len, 0, -EINVAL, AGREE);
        free(s);
}

static void test_line_endings(void **state)
{
        char *s = malloc(2 * sig_hashed_len);
        size_t n = 0;

        for (size_t i = 0; i < sig_hashed_len; i++) {
                if (sig_hashed[i] == '\n')
                        s[n++] = '\r';
                s[n++] = sig_hashed[i];
        }
        check_case("CRLF line endings", &key_a, 1, msg, MSG_SIZE, s, n, 0, 0, AGREE);
        free(s);
}

static void test_non_canonical_base64(void **state)
{
        size_t off, llen;
        char *s = malloc(sig_hashed_len + 1);

        /* 64 bytes -> 86 characters + "==": the last character carries 4 unused bits. */
        memcpy(s, sig_hashed, sig_hashed_len + 1);
        find_line(s, sig_hashed_len, 3, &off, &llen);
        assert_int_equal(llen, 88);
        assert_memory_equal(s + off + 86, "==", 2);
        {
                static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                const char *pos = strchr(b64, s[off + 85]);

                assert_non_null(pos);
                s[off + 85] = b64[(pos - b64) ^ 1];     /* set an unused bit */
        }
        check_case("non-canonical base64", &key_a, 1, msg, MSG_SIZE, s, sig_hashed_len, 0, -EINVAL, STRICTER);
        free(s);
}

/* libsodium 1.0.18 decodes bytes >= 0x80 as base64 digits; hvpatch must not. */
static void test_high_bytes_in_base64(void **state)
{
        char *s = malloc(sig_hashed_len + 1);
        size_t off, llen;

        for (int line = 1; line <= 3; line += 2) {
                for (unsigned c = 0x80; c <= 0xff; c += 0x15) {
                        memcpy(s, sig_hashed, sig_hashed_len + 1);
                        find_line(s, sig_hashed_len, line, &off, &llen);
                        s[off + 7] = (char)c;
                        check_case("byte >= 0x80 inside base64", &key_a, 1, msg, MSG_SIZE, s, sig_hashed_len, 0,
                                   -EINVAL, AGREE);
                }
        }
        free(s);
}

static void test_keys(void **state)
{
        struct hvp_minisign_key keys[2] = { key_a, key_b };
        size_t len;
        char *s;

        /* Signed by b; only a is trusted. */
        check_case("untrusted signer", &key_a, 1, msg, MSG_SIZE, sig_by_b, sig_by_b_len, 0, -ENOKEY, AGREE);
        assert_non_null(strstr(hvp_last_error(), key_b_hex));
        /* Both trusted: b's signature verifies with b. */
        assert_int_equal(hvp_minisign_verify(keys, 2, msg, MSG_SIZE, sig_by_b, sig_by_b_len, 0,
                                             &(struct hvp_signature_info){ 0 }), 0);
        /* a's signature claiming b's key id: refused as unknown, or as bad when b is trusted. */
        {
                uint8_t blob[74];
                size_t off, llen, blen;

                find_line(sig_hashed, sig_hashed_len, 1, &off, &llen);
                assert_int_equal(sodium_base642bin(blob, sizeof(blob), sig_hashed + off, llen, NULL, &blen, NULL,
                                                   sodium_base64_VARIANT_ORIGINAL), 0);
                memcpy(blob + 2, key_b.key_id, 8);
                char line[128];
                sodium_bin2base64(line, sizeof(line), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
                s = replace_line(sig_hashed, sig_hashed_len, 1, line, &len);
        }
        check_case("wrong key id, not trusted", &key_a, 1, msg, MSG_SIZE, s, len, 0, -ENOKEY, AGREE);
        check_case("wrong key id of another trusted key", keys, 2, msg, MSG_SIZE, s, len, 0, -EKEYREJECTED, AGREE);
        free(s);
        /* No keys at all (minisign cannot run without one: no oracle here). */
        assert_int_equal(hvp_minisign_verify(NULL, 0, msg, MSG_SIZE, sig_hashed, sig_hashed_len, 0,
                                             &(struct hvp_signature_info){ 0 }), -ENOKEY);
}

static void test_public_key_files(void **state)
{
        struct hvp_minisign_key k;
        size_t len;
        char *text = read_file(path("a.pub"), &len), *bad;
        char b64[64];
        size_t off, llen;

        assert_int_equal(hvp_minisign_key_parse(text, len, &k), 0);
        assert_memory_equal(k.pk, key_a.pk, sizeof(k.pk));
        hvp_minisign_key_id_hex(k.key_id, b64);
        assert_string_equal(b64, key_a_hex);
        /* The base64 line alone, as minisign -P takes it. */
        find_line(text, len, 1, &off, &llen);
        memcpy(b64, text + off, llen);
        b64[llen] = '\0';
        assert_int_equal(hvp_minisign_key_from_base64(b64, &k), 0);
        assert_memory_equal(k.key_id, key_a.key_id, sizeof(k.key_id));
        b64[10] = '*';
        assert_int_equal(hvp_minisign_key_from_base64(b64, &k), -EINVAL);
        b64[llen - 1] = '\0';
        assert_int_equal(hvp_minisign_key_from_base64(b64, &k), -EINVAL);
        /* Truncations of the file are malformed, except dropping the final newline. */
        for (size_t cut = 0; cut < len; cut++)
                assert_int_equal(hvp_minisign_key_parse(text, cut, &k), cut == len - 1 ? 0 : -EINVAL);
        bad = malloc(len + 8);
        memcpy(bad, text, len);
        memcpy(bad + len, "junk\n", 5);
        assert_int_equal(hvp_minisign_key_parse(bad, len + 5, &k), -EINVAL);
        /* A signature file is not a key. */
        assert_int_equal(hvp_minisign_key_parse(sig_hashed, sig_hashed_len, &k), -EINVAL);
        free(bad);
        free(text);
}

/*
 * Random single-byte damage to the signature file: whatever hvpatch accepts,
 * minisign must accept too, and hvpatch never crashes or reads out of bounds.
 */
static void test_random_damage_against_oracle(void **state)
{
        char *s = malloc(sig_hashed_len);
        unsigned accepted = 0;

        for (int i = 0; i < 150; i++) {
                struct hvp_signature_info info;
                size_t pos = randombytes_uniform((uint32_t)sig_hashed_len);
                int r;

                memcpy(s, sig_hashed, sig_hashed_len);
                s[pos] = (char)randombytes_uniform(256);
                r = hvp_minisign_verify(&key_a, 1, msg, MSG_SIZE, s, sig_hashed_len, 0, &info);
                assert_true(r == 0 || r == -EINVAL || r == -ENOKEY || r == -EKEYREJECTED);
                if (r == 0) {
                        accepted++;
                        if (!minisign_accepts(path("a.pub"), msg, MSG_SIZE, s, sig_hashed_len, 0))
                                fail_msg("byte %zu set to 0x%02x: hvpatch accepts, minisign refuses", pos,
                                         (unsigned char)s[pos]);
                }
        }
        printf("random damage: %u of 150 still verified (untrusted comment or unchanged byte)\n", accepted);
        free(s);
}

static void test_oversized(void **state)
{
        char *big = malloc(HVP_MINISIGN_SIG_FILE_MAX + 2);
        struct hvp_minisig sig;

        memset(big, 'A', HVP_MINISIGN_SIG_FILE_MAX + 1);
        assert_int_equal(hvp_minisig_parse(big, HVP_MINISIGN_SIG_FILE_MAX + 1, &sig), -E2BIG);
        /* A 2000-byte untrusted comment: over minisign's 1024-byte line. */
        size_t off, llen;

        find_line(sig_hashed, sig_hashed_len, 1, &off, &llen);
        memcpy(big, "untrusted comment: ", 19);
        big[2000] = '\n';
        memcpy(big + 2001, sig_hashed + off, sig_hashed_len - off);
        assert_int_equal(hvp_minisig_parse(big, 2001 + sig_hashed_len - off, &sig), -EINVAL);
        assert_non_null(strstr(hvp_last_error(), "longer than"));
        free(big);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_signatures),
                cmocka_unit_test(test_verify_file),
                cmocka_unit_test(test_message_bit_flips),
                cmocka_unit_test(test_signature_bit_flips),
                cmocka_unit_test(test_algorithm_confusion),
                cmocka_unit_test(test_truncated_and_padded),
                cmocka_unit_test(test_edited_comments),
                cmocka_unit_test(test_line_endings),
                cmocka_unit_test(test_non_canonical_base64),
                cmocka_unit_test(test_high_bytes_in_base64),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_public_key_files),
                cmocka_unit_test(test_random_damage_against_oracle),
                cmocka_unit_test(test_oversized),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
