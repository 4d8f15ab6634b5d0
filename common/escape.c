#include <stdint.h>

#include "common/escape.h"

size_t hvp_utf8_seq_len(const char *s)
{
        const unsigned char *b = (const unsigned char *)s;
        size_t len;
        uint32_t cp;

        if (b[0] < 0x80)
                return b[0] ? 1 : 0;
        if (b[0] >= 0xc2 && b[0] <= 0xdf) {
                len = 2;
                cp = b[0] & 0x1f;
        } else if (b[0] >= 0xe0 && b[0] <= 0xef) {
                len = 3;
                cp = b[0] & 0x0f;
        } else if (b[0] >= 0xf0 && b[0] <= 0xf4) {
                len = 4;
                cp = b[0] & 0x07;
        } else {
                return 0;
        }
        for (size_t i = 1; i < len; i++) {
                if ((b[i] & 0xc0) != 0x80)      /* also stops at NUL */
                        return 0;
                cp = cp << 6 | (b[i] & 0x3f);
        }
        /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

static int is_control(unsigned char c)
{
        return (c < 0x20 && c != '\t') || c == 0x7f;
}

void hvp_text_sanitize(char *s)
{
        while (*s) {
                size_t n = hvp_utf8_seq_len(s);

                if (n == 0 || (n == 1 && is_control((unsigned char)*s))) {
                        *s++ = '?';
                        continue;
                }
                /* C1 controls U+0080..U+009F (0xc2 0x80..0x9f) too */
                if (n == 2 && (unsigned char)s[0] == 0xc2 && (unsigned char)s[1] < 0xa0) {
                        s[0] = s[1] = '?';
                        s += 2;
                        continue;
                }
                s += n;
        }
}

/* Each character of s, valid and printable, through put; anything else as '?'. */
static void each_char(FILE *f, const char *s, void (*put)(FILE *f, const char *c, size_t n))
{
        while (*s) {
                size_t n = hvp_utf8_seq_len(s);

                if (n == 0 || (n == 1 && is_control((unsigned char)*s) && *s != '\n') ||
                    (n == 2 && (unsigned char)s[0] == 0xc2 && (unsigned char)s[1] < 0xa0)) {
                        fputc('?', f);
                        s += n ? n : 1;
                        continue;
                }
                put(f, s, n);
                s += n;
        }
}

static void put_html(FILE *f, const char *c, size_t n)
{
        switch (*c) {
        case '&':
                fputs("&amp;", f);
                return;
        case '<':
                fputs("&lt;", f);
                return;
        case '>':
                fputs("&gt;", f);
                return;
        case '"':
                fputs("&quot;", f);
                return;
        case '\'':
                fputs("&#39;", f);
                return;
        }
        fwrite(c, 1, n, f);
}

static void put_prom(FILE *f, const char *c, size_t n)
{
        switch (*c) {
        case '\\':
                fputs("\\\\", f);
                return;
        case '"':
                fputs("\\\"", f);
                return;
        case '\n':
                fputs("\\n", f);
                return;
        }
        fwrite(c, 1, n, f);
}

void hvp_html_escape(FILE *f, const char *s)
{
        each_char(f, s, put_html);
}

void hvp_prom_label_escape(FILE *f, const char *s)
{
        each_char(f, s, put_prom);
}
