/*
 * sets.c - the data structures behind set lookups: domain hash table, CIDR tries, date
 * ranges and user names.
 *
 * Contract: built once at compile time (the *_add functions allocate and report a static
 * reason), then read-only; lookups allocate nothing and may run in many threads at once.
 * Domains: one open-addressing table of lower-cased names keyed by a hash computed from
 * the right, so a lookup hashes the host once, right to left, and probes the table at each
 * label boundary: cost proportional to the host's length and number of labels.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "rules-internal.h"

/* --- domains -------------------------------------------------------------------------- */

#define FNV_OFF   1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static uint64_t
hash_step(uint64_t h, int c)
{
	return (h ^ (uint64_t)(unsigned char)lower(c)) * FNV_PRIME;
}

/* Hash of s[0..len), right to left, lower-cased. */
static uint64_t
dom_hash(const char *s, size_t len)
{
	uint64_t h = FNV_OFF;

	while (len > 0)
		h = hash_step(h, s[--len]);
	return h;
}

static struct dom_ent *
dom_find(const struct domset *d, uint64_t h, const char *s, size_t len)
{
	if (d->cap == 0)
		return NULL;
	for (size_t i = (size_t)h & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
		struct dom_ent *e = &d->tab[i];

		if (e->flags == 0)
			return NULL;
		if (e->hash == h && e->len == len) {
			const char *n = d->pool + e->off;
			size_t k = 0;

			while (k < len && n[k] == lower(s[k]))
				k++;
			if (k == len)
				return e;
		}
	}
}

static int
dom_grow(struct domset *d)
{
	size_t ncap = d->cap == 0 ? 64 : d->cap * 2;
	struct dom_ent *nt = calloc(ncap, sizeof(*nt));

	if (nt == NULL)
		return -1;
	for (size_t i = 0; i < d->cap; i++) {
		struct dom_ent *e = &d->tab[i];
		size_t j;

		if (e->flags == 0)
			continue;
		for (j = (size_t)e->hash & (ncap - 1); nt[j].flags != 0; j = (j + 1) & (ncap - 1))
			;
		nt[j] = *e;
	}
	free(d->tab);
	d->tab = nt;
	d->cap = ncap;
	return 0;
}

int
domset_add(struct domset *d, const char *s, const char **why)
{
	unsigned flags = DOM_EXACT;
	size_t len;
	uint64_t h;
	struct dom_ent *e;

	if (s[0] == '*' && s[1] == '.') {
		flags = DOM_SUB;
		s += 2;
	} else if (s[0] == '.') {
		flags = DOM_EXACT | DOM_SUB;
		s++;
	}
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	*why = "bad domain name";
	if (len == 0 || len > 253 || s[0] == '.')
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80) {
			*why = "non-ASCII domain name (write IDNs in punycode, xn--...)";
			return -1;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.') ||
		    (c == '.' && s[i + 1] == '.'))
			return -1;
	}
	*why = "out of memory";
	h = dom_hash(s, len);
	if ((e = dom_find(d, h, s, len)) != NULL) {
		e->flags |= flags;
		return 0;
	}
	if ((d->count + 1) * 2 > d->cap && dom_grow(d) == -1)
		return -1;
	if (d->pool_len + len > d->pool_cap) {
		size_t ncap = d->pool_cap == 0 ? 4096 : d->pool_cap * 2;
		char *np;

		while (ncap < d->pool_len + len)
			ncap *= 2;
		if (ncap > UINT32_MAX || (np = realloc(d->pool, ncap)) == NULL)
			return -1;
		d->pool = np;
		d->pool_cap = ncap;
	}
	for (size_t i = 0; i < len; i++)
		d->pool[d->pool_len + i] = (char)lower(s[i]);
	{
		size_t i;

		for (i = (size_t)h & (d->cap - 1); d->tab[i].flags != 0; i = (i + 1) & (d->cap - 1))
			;
		d->tab[i].hash = h;
		d->tab[i].off = (uint32_t)d->pool_len;
		d->tab[i].len = (uint32_t)len;
		d->tab[i].flags = flags;
	}
	d->pool_len += len;
	d->count++;
	return 0;
}

int
domset_match(const struct domset *d, const char *host, size_t len)
{
	uint64_t h = FNV_OFF;
	const struct dom_ent *e;

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || d->count == 0)
		return 0;
	/* walk right to left; at each dot the hash of the suffix after it is complete */
	for (size_t i = len; i > 0; i--) {
		if (host[i - 1] == '.' && i < len) {
			e = dom_find(d, h, host + i, len - i);
			if (e != NULL && (e->flags & DOM_SUB))
				return 1;
		}
		h = hash_step(h, host[i - 1]);
	}
	e = dom_find(d, h, host, len);
	return e != NULL && (e->flags & DOM_EXACT);
}

void
domset_free(struct domset *d)
{
	free(d->tab);
	free(d->pool);
	memset(d, 0, sizeof(*d));
}

/* --- CIDR tries ------------------------------------------------------------------------- */

int
cidrset_init(struct cidrset *c)
{
	c->cap = 64;
	c->count = 2;
	c->nodes = calloc(c->cap, sizeof(*c->nodes));
	return c->nodes == NULL ? -1 : 0;
}

int
rules_ip_parse(const char *s, size_t len, struct rules_ip *ip)
{
	char buf[64];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, buf, ip->addr) == 1) {
		ip->family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, ip->addr) == 1) {
		ip->family = 6;
		return 0;
	}
	return -1;
}

int
rules_ip_from_sockaddr(const struct sockaddr *sa, struct rules_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		memcpy(ip->addr, &sin->sin_addr, 4);
		ip->family = 4;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(ip->addr, &sin6->sin6_addr, 16);
		ip->family = 6;
		return 0;
	}
	return -1;
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
cidrset_add(struct cidrset *c, const char *s, const char **why)
{
	const char *slash = strchr(s, '/');
	struct rules_ip ip;
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	long bits, max;
	uint32_t n;

	*why = "bad address";
	if (rules_ip_parse(s, alen, &ip) == -1)
		return -1;
	max = ip.family == 4 ? 32 : 128;
	bits = max;
	if (slash != NULL) {
		char *end;

		*why = "bad prefix length";
		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		bits = strtol(slash + 1, &end, 10);
		if (*end != '\0' || bits > max)
			return -1;
	}
	/* a v4-mapped IPv6 entry is an IPv4 entry */
	if (ip.family == 6 && bits >= 96 && memcmp(ip.addr, v4mapped, 12) == 0) {
		memmove(ip.addr, ip.addr + 12, 4);
		ip.family = 4;
		bits -= 96;
	}
	n = ip.family == 4 ? 0 : 1;
	*why = "out of memory";
	for (long i = 0; i < bits; i++) {
		int b = (ip.addr[i / 8] >> (7 - i % 8)) & 1;

		if (c->nodes[n].term) /* a shorter prefix covers this one */
			return 0;
		if (c->nodes[n].child[b] == 0) {
			if (c->count == c->cap) {
				struct cidr_node *nn =
				        realloc(c->nodes, c->cap * 2 * sizeof(*c->nodes));

				if (nn == NULL || c->count >= UINT32_MAX)
					return -1;
				c->nodes = nn;
				c->cap *= 2;
			}
			memset(&c->nodes[c->count], 0, sizeof(c->nodes[0]));
			c->nodes[n].child[b] = (uint32_t)c->count++;
		}
		n = c->nodes[n].child[b];
	}
	c->nodes[n].term = 1;
	return 0;
}

int
cidrset_match(const struct cidrset *c, const struct rules_ip *ip)
{
	const uint8_t *a = ip->addr;
	uint32_t n;
	int bits;

	if (ip->family == 4) {
		n = 0;
		bits = 32;
	} else if (ip->family == 6 && memcmp(a, v4mapped, 12) == 0) {
		n = 0;
		bits = 32;
		a += 12;
	} else if (ip->family == 6) {
		n = 1;
		bits = 128;
	} else {
		return 0;
	}
	for (int i = 0;; i++) {
		if (c->nodes[n].term)
			return 1;
		if (i == bits)
			return 0;
		n = c->nodes[n].child[(a[i / 8] >> (7 - i % 8)) & 1];
		if (n == 0)
			return 0;
	}
}

void
cidrset_free(struct cidrset *c)
{
	free(c->nodes);
	memset(c, 0, sizeof(*c));
}

/* --- dates -------------------------------------------------------------------------------- */

static const char *
date_one(const char *s, int32_t *day)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y = 0, m, d;

	for (int i = 0; i < 10; i++) {
		if (i == 4 || i == 7) {
			if (s[i] != '-')
				return NULL;
		} else if (s[i] < '0' || s[i] > '9') {
			return NULL;
		}
	}
	for (int i = 0; i < 4; i++)
		y = y * 10 + (unsigned)(s[i] - '0');
	m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
	d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
		return NULL;
	*day = (int32_t)tz_days_from_civil(y, m, d);
	return s + 10;
}

int
date_range_parse(const char *s, struct date_range *r)
{
	const char *p = date_one(s, &r->from);

	if (p == NULL)
		return -1;
	r->to = r->from;
	if (*p == '\0')
		return 0;
	if (p[0] != '.' || p[1] != '.' || (p = date_one(p + 2, &r->to)) == NULL || *p != '\0' ||
	    r->to < r->from)
		return -1;
	return 0;
}

int
dateset_add(struct dateset *d, const char *s, const char **why)
{
	struct date_range r;

	*why = "bad date (YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)";
	if (date_range_parse(s, &r) == -1)
		return -1;
	*why = "out of memory";
	if (d->count == d->cap) {
		size_t ncap = d->cap == 0 ? 16 : d->cap * 2;
		struct date_range *nr = realloc(d->r, ncap * sizeof(*nr));

		if (nr == NULL)
			return -1;
		d->r = nr;
		d->cap = ncap;
	}
	d->r[d->count++] = r;
	return 0;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct date_range *x = a, *y = b;

	return x->from < y->from ? -1 : x->from > y->from;
}

void
dateset_finish(struct dateset *d)
{
	size_t o = 0;

	if (d->count == 0)
		return;
	qsort(d->r, d->count, sizeof(*d->r), range_cmp);
	for (size_t i = 1; i < d->count; i++) {
		if (d->r[i].from <= d->r[o].to + 1) {
			if (d->r[i].to > d->r[o].to)
				d->r[o].to = d->r[i].to;
		} else {
			d->r[++o] = d->r[i];
		}
	}
	d->count = o + 1;
}

int
dateset_match(const struct dateset *d, int32_t day)
{
	size_t lo = 0, hi = d->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->r[mid].to < day)
			lo = mid + 1;
		else if (d->r[mid].from > day)
			hi = mid;
		else
			return 1;
	}
	return 0;
}

void
dateset_free(struct dateset *d)
{
	free(d->r);
	memset(d, 0, sizeof(*d));
}

/* --- users ---------------------------------------------------------------------------------- */

int
userset_add(struct userset *u, const char *s)
{
	char *dup;

	if (u->count == u->cap) {
		size_t ncap = u->cap == 0 ? 16 : u->cap * 2;
		char **nn = realloc(u->names, ncap * sizeof(*nn));

		if (nn == NULL)
			return -1;
		u->names = nn;
		u->cap = ncap;
	}
	if ((dup = strdup(s)) == NULL)
		return -1;
	u->names[u->count++] = dup;
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
userset_finish(struct userset *u)
{
	if (u->count > 0)
		qsort(u->names, u->count, sizeof(*u->names), name_cmp);
}

int
userset_match(const struct userset *u, const char *name, size_t len)
{
	size_t lo = 0, hi = u->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *n = u->names[mid];
		int c = strncmp(n, name, len);

		if (c == 0 && n[len] != '\0')
			c = 1;
		if (c == 0) {
			/* a NUL inside name[0..len) never equals a stored name */
			return memchr(name, '\0', len) == NULL;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void
userset_free(struct userset *u)
{
	for (size_t i = 0; i < u->count; i++)
		free(u->names[i]);
	free(u->names);
	memset(u, 0, sizeof(*u));
}
