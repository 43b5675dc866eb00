/*
 * urlnorm.c - URL normalization before matching (see rules.h for the rules applied).
 *
 * Contract: pure functions over the caller's buffers, no allocation. The output is never
 * longer than the input plus one byte (an empty path becomes "/").
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "rules.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
unreserved(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * Path (strict): decode unreserved escapes, upper-case the others, an invalid escape is -1.
 * Query: only upper-case the hex of valid escapes, keep everything else.
 */
static long
decode(const char *in, size_t len, char *out, int strict)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (in[i] != '%') {
			out[o++] = in[i];
			continue;
		}
		hi = i + 1 < len ? hexval((unsigned char)in[i + 1]) : -1;
		lo = i + 2 < len ? hexval((unsigned char)in[i + 2]) : -1;
		if (hi == -1 || lo == -1) {
			if (strict)
				return -1;
			out[o++] = in[i];
			continue;
		}
		if (strict && unreserved(hi * 16 + lo)) {
			out[o++] = (char)(hi * 16 + lo);
		} else {
			out[o++] = '%';
			out[o++] = hex[hi];
			out[o++] = hex[lo];
		}
		i += 2;
	}
	return (long)o;
}

/*
 * Merge slashes and remove dot segments in place over p[0..len) which starts with '/'.
 * Works segment by segment: the output is a stack of segments, ".." pops one.
 */
static size_t
dots(char *p, size_t len)
{
	size_t o = 0, i = 0;

	while (i < len) {
		size_t s, n;

		while (i < len && p[i] == '/')
			i++;
		s = i;
		while (i < len && p[i] != '/')
			i++;
		n = i - s;
		if (n == 1 && p[s] == '.') {
			if (i >= len) /* trailing "/." keeps the slash */
				p[o++] = '/';
			continue;
		}
		if (n == 2 && p[s] == '.' && p[s + 1] == '.') {
			while (o > 0 && p[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before the popped segment */
			if (i >= len)
				p[o++] = '/';
			continue;
		}
		if (n == 0) { /* only slashes were left */
			p[o++] = '/';
			continue;
		}
		p[o++] = '/';
		memmove(p + o, p + s, n);
		o += n;
	}
	if (o == 0)
		p[o++] = '/';
	return o;
}

long
rules_path_normalize(const char *in, size_t len, char *out, size_t cap)
{
	const char *q = memchr(in, '?', len);
	size_t plen = q != NULL ? (size_t)(q - in) : len;
	long n, m;

	if (cap < len + 1)
		return -1;
	/* decode into out[1..] so that a relative path can get its leading '/' */
	out[0] = '/';
	n = decode(in, plen, out + 1, 1);
	if (n == -1)
		return -1;
	if (n > 0 && out[1] == '/')
		memmove(out, out + 1, (size_t)n);
	else
		n++;
	n = (long)dots(out, (size_t)n);
	if (q != NULL) {
		out[n++] = '?';
		m = decode(q + 1, len - plen - 1, out + n, 0);
		n += m;
	}
	return n;
}

long
rules_url_normalize(const char *in, size_t len, char *out, size_t cap)
{
	const char *p = in, *end = in + len, *sep, *h, *hend, *pstart;
	size_t o = 0;
	long n;
	int https;

	if (cap < len + 1)
		return -1;
	sep = NULL;
	for (const char *c = in; c + 2 < end; c++) {
		if (c[0] == ':' && c[1] == '/' && c[2] == '/') {
			sep = c;
			break;
		}
		if (c[0] == '/' || c[0] == '?')
			break;
	}
	if (sep == NULL || sep == in)
		return -1;
	for (; p < sep; p++)
		out[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	https = o == 5 && memcmp(out, "https", 5) == 0;
	memcpy(out + o, "://", 3);
	o += 3;
	h = sep + 3;
	pstart = h;
	while (pstart < end && *pstart != '/' && *pstart != '?')
		pstart++;
	/* host ends at the port colon (outside IPv6 brackets) */
	hend = pstart;
	for (const char *c = pstart; c > h; c--) {
		if (c[-1] == ']')
			break;
		if (c[-1] == ':') {
			hend = c - 1;
			break;
		}
	}
	{
		const char *he = hend;
		if (he > h && he[-1] == '.')
			he--;
		for (const char *c = h; c < he; c++)
			out[o++] = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	}
	if (hend < pstart) {
		size_t plen = (size_t)(pstart - hend - 1);
		const char *port = hend + 1;

		if (!(plen == 0 ||
		      (plen == 2 && memcmp(port, "80", 2) == 0 && !https && o >= 7 &&
		       memcmp(out, "http://", 7) == 0) ||
		      (plen == 3 && memcmp(port, "443", 3) == 0 && https))) {
			out[o++] = ':';
			memcpy(out + o, port, plen);
			o += plen;
		}
	}
	n = rules_path_normalize(pstart, (size_t)(end - pstart), out + o, cap - o);
	if (n == -1)
		return -1;
	return (long)o + n;
}
