/*
 * Text from guests and domain definitions written into other formats: HTML and the
 * Prometheus text exposition. Every byte that is not valid UTF-8, and every control
 * character, comes out as '?': a hostile name can neither inject markup nor break a
 * line of the exposition.
 */
#ifndef HVP_COMMON_ESCAPE_H
#define HVP_COMMON_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* The length (1..4) of the valid UTF-8 sequence at s, 0 if s starts none (or at NUL). */
size_t hvp_utf8_seq_len(const char *s);
/* Replace, in place, every byte of an invalid UTF-8 sequence and every control character but tab with '?'. */
void hvp_text_sanitize(char *s);
/* s as HTML text or attribute value (quoted with " or '): & < > " ' as entities. */
void hvp_html_escape(FILE *f, const char *s);
/* s as a Prometheus label value (text format 0.0.4): \ " and newline escaped. */
void hvp_prom_label_escape(FILE *f, const char *s);

#endif
