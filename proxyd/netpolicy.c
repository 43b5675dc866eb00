#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy.h"

static void np_error(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
np_error(char **err, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	*err = s;
}

/* Digits only, 1..65535; s[0..len). Returns the port or 0. */
static unsigned
np_port_value(const char *s, size_t len)
{
	unsigned v = 0;
	size_t i;

	if (len == 0 || len > 5)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= 65535 ? v : 0;
}

static int
np_range_cmp(const void *a, const void *b)
{
	const struct np_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

struct np_ports *
np_ports_parse(char *const *words, size_t nwords, char **err)
{
	struct np_ports *p;
	size_t i, n;

	if (nwords == 0) {
		np_error(err, "no ports");
		return NULL;
	}
	if (nwords > 65535) {
		np_error(err, "too many port ranges");
		return NULL;
	}
	p = malloc(sizeof(*p) + nwords * sizeof(p->r[0]));
	if (p == NULL) {
		np_error(err, "out of memory");
		return NULL;
	}
	for (i = 0; i < nwords; i++) {
		const char *w = words[i], *dash = strchr(w, '-');
		unsigned lo, hi;

		if (dash == NULL) {
			lo = hi = np_port_value(w, strlen(w));
			if (lo == 0) {
				np_error(err, "bad port \"%s\"", w);
				goto fail;
			}
		} else {
			lo = np_port_value(w, (size_t)(dash - w));
			hi = np_port_value(dash + 1, strlen(dash + 1));
			if (lo == 0 || hi == 0 || lo > hi) {
				np_error(err, "bad port range \"%s\"", w);
				goto fail;
			}
		}
		p->r[i].lo = (uint16_t)lo;
		p->r[i].hi = (uint16_t)hi;
	}
	qsort(p->r, nwords, sizeof(p->r[0]), np_range_cmp);
	/* merge overlapping and adjacent ranges: "80 81-90 85" is 80-90 */
	n = 0;
	for (i = 0; i < nwords; i++) {
		if (n > 0 && (unsigned)p->r[i].lo <= (unsigned)p->r[n - 1].hi + 1) {
			if (p->r[i].hi > p->r[n - 1].hi)
				p->r[n - 1].hi = p->r[i].hi;
		} else {
			p->r[n++] = p->r[i];
		}
	}
	p->n = n;
	return p;
fail:
	free(p);
	return NULL;
}

void
np_ports_free(struct np_ports *p)
{
	free(p);
}

int
np_ports_allows(const struct np_ports *p, unsigned port)
{
	size_t lo = 0, hi;

	if (p == NULL)
		return 0;
	hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (port < p->r[mid].lo)
			hi = mid;
		else if (port > p->r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

/* a in prefix/len, host byte order */
static int
np_in4(uint32_t a, uint32_t prefix, unsigned len)
{
	uint32_t mask = len == 0 ? 0 : 0xffffffffu << (32 - len);

	return (a & mask) == prefix;
}

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((c) << 8) | (d))

enum np_class
np_classify_v4(uint32_t a)
{
	if (a == V4(169, 254, 169, 254))
		return NP_METADATA;
	if (np_in4(a, V4(0, 0, 0, 0), 8))
		return NP_UNSPECIFIED;
	if (np_in4(a, V4(127, 0, 0, 0), 8))
		return NP_LOOPBACK;
	if (np_in4(a, V4(10, 0, 0, 0), 8) || np_in4(a, V4(172, 16, 0, 0), 12) ||
	    np_in4(a, V4(192, 168, 0, 0), 16) || np_in4(a, V4(100, 64, 0, 0), 10))
		return NP_PRIVATE;
	if (np_in4(a, V4(169, 254, 0, 0), 16))
		return NP_LINKLOCAL;
	if (a == 0xffffffffu)
		return NP_BROADCAST;
	if (np_in4(a, V4(224, 0, 0, 0), 4))
		return NP_MULTICAST;
	if (np_in4(a, V4(240, 0, 0, 0), 4) || np_in4(a, V4(192, 0, 0, 0), 24) ||
	    np_in4(a, V4(198, 18, 0, 0), 15) || np_in4(a, V4(192, 0, 2, 0), 24) ||
	    np_in4(a, V4(198, 51, 100, 0), 24) || np_in4(a, V4(203, 0, 113, 0), 24))
		return NP_RESERVED;
	return NP_PUBLIC;
}

static uint32_t
np_v4_at(const uint8_t *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static int
np_zero(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

enum np_class
np_classify_v6(const uint8_t a[16])
{
	static const uint8_t metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
	                                     0,    0,    0,    0,    0, 0, 0x02, 0x54};
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

	/* ::ffff:a.b.c.d */
	if (np_zero(a, 10) && a[10] == 0xff && a[11] == 0xff)
		return np_classify_v4(np_v4_at(a + 12));
	if (memcmp(a, nat64, sizeof(nat64)) == 0)
		return np_classify_v4(np_v4_at(a + 12));
	if (memcmp(a, metadata, sizeof(metadata)) == 0)
		return NP_METADATA;
	if (np_zero(a, 16))
		return NP_UNSPECIFIED;
	if (np_zero(a, 15) && a[15] == 1)
		return NP_LOOPBACK;
	if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0))
		return NP_PRIVATE;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return NP_LINKLOCAL;
	if (a[0] == 0xff)
		return NP_MULTICAST;
	if ((a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) ||
	    (a[0] == 0x01 && np_zero(a + 1, 7)) || np_zero(a, 12))
		return NP_RESERVED;
	return NP_PUBLIC;
}

enum np_class
np_classify(const struct sockaddr *sa)
{
	if (sa == NULL)
		return NP_RESERVED;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof(sin));
		return np_classify_v4(ntohl(sin.sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		return np_classify_v6(sin6.sin6_addr.s6_addr);
	}
	return NP_RESERVED;
}

const char *
np_class_name(enum np_class c)
{
	switch (c) {
	case NP_PUBLIC:
		return "public";
	case NP_METADATA:
		return "metadata";
	case NP_UNSPECIFIED:
		return "unspecified";
	case NP_LOOPBACK:
		return "loopback";
	case NP_PRIVATE:
		return "private";
	case NP_LINKLOCAL:
		return "link-local";
	case NP_BROADCAST:
		return "broadcast";
	case NP_MULTICAST:
		return "multicast";
	case NP_RESERVED:
		return "reserved";
	}
	return "reserved";
}

int
np_destination_denied(const struct sockaddr *sa)
{
	return np_classify(sa) != NP_PUBLIC;
}

int
np_client_is_local(const struct sockaddr *sa)
{
	switch (np_classify(sa)) {
	case NP_LOOPBACK:
	case NP_PRIVATE:
	case NP_LINKLOCAL:
	case NP_METADATA:
		return 1;
	default:
		return 0;
	}
}
