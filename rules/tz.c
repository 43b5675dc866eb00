/*
 * tz.c - time zones without the C library's: a TZif (RFC 8536, versions 1 to 3) reader
 * and a POSIX TZ string evaluator, plus the proleptic Gregorian calendar.
 *
 * Contract: tz_load() reads $TZDIR/NAME (default /usr/share/zoneinfo/NAME), or
 * /etc/localtime for the local zone, once; tz_offset() is pure arithmetic. Transitions in
 * the table are used up to the last one, the footer's POSIX TZ rule beyond it (Debian's
 * "slim" files hold only a few transitions). Leap-second records are skipped: times are
 * POSIX times. Never calls tzset() or localtime() and never reads or sets $TZ.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules-internal.h"

#define TZ_MAX_FILE (1024 * 1024)

struct tz_posix_rule {
	char kind; /* 'J' (1..365, no Feb 29), 'N' (0..365), 'M' (month.week.day) */
	int n, m, w, d;
	int32_t time; /* seconds after local midnight; may be negative or past 24h */
};

struct tz_zone {
	int64_t *trans;
	uint8_t *idx;
	int32_t *utoff;
	size_t ntrans, ntypes;
	int has_posix, has_dst;
	int32_t std_off, dst_off; /* east-positive UTC offsets */
	struct tz_posix_rule start, end;
};

/* Howard Hinnant's days_from_civil/civil_from_days. */
int64_t
tz_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
tz_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t
floordiv(int64_t a, int64_t b)
{
	return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* --- POSIX TZ strings --------------------------------------------------------------- */

static const char *
posix_name(const char *p)
{
	const char *s = p;

	if (*p == '<') {
		while (*p != '\0' && *p != '>')
			p++;
		return *p == '>' && p - s > 1 ? p + 1 : NULL;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] with hours up to max; NULL if invalid */
static const char *
posix_hms(const char *p, int max, int32_t *out)
{
	int sign = 1, v[3] = {0, 0, 0};

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	for (int i = 0; i < 3; i++) {
		int n = 0, digits = 0;

		if (i > 0) {
			if (*p != ':')
				break;
			p++;
		}
		while (*p >= '0' && *p <= '9' && digits < 3) {
			n = n * 10 + (*p++ - '0');
			digits++;
		}
		if (digits == 0 || (i == 0 && n > max) || (i > 0 && n > 59))
			return NULL;
		v[i] = n;
	}
	*out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
	return p;
}

static const char *
posix_num(const char *p, int *n)
{
	int v = 0, digits = 0;

	while (*p >= '0' && *p <= '9' && digits < 4) {
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	*n = v;
	return digits > 0 ? p : NULL;
}

static const char *
posix_rule(const char *p, struct tz_posix_rule *r)
{
	if (*p == 'M') {
		r->kind = 'M';
		if ((p = posix_num(p + 1, &r->m)) == NULL || *p++ != '.' ||
		    (p = posix_num(p, &r->w)) == NULL || *p++ != '.' ||
		    (p = posix_num(p, &r->d)) == NULL)
			return NULL;
		if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d > 6)
			return NULL;
	} else if (*p == 'J') {
		r->kind = 'J';
		if ((p = posix_num(p + 1, &r->n)) == NULL || r->n < 1 || r->n > 365)
			return NULL;
	} else {
		r->kind = 'N';
		if ((p = posix_num(p, &r->n)) == NULL || r->n > 365)
			return NULL;
	}
	r->time = 7200;
	if (*p == '/' && (p = posix_hms(p + 1, 167, &r->time)) == NULL)
		return NULL;
	return p;
}

static int
posix_parse(struct tz_zone *z, const char *p)
{
	int32_t v;

	if ((p = posix_name(p)) == NULL || (p = posix_hms(p, 24, &v)) == NULL)
		return -1;
	z->std_off = -v;
	z->has_posix = 1;
	if (*p == '\0')
		return 0;
	if ((p = posix_name(p)) == NULL)
		return -1;
	z->has_dst = 1;
	z->dst_off = z->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if ((p = posix_hms(p, 24, &v)) == NULL)
			return -1;
		z->dst_off = -v;
	}
	if (*p == '\0') /* no rule: the US rule, as glibc does */
		p = ",M3.2.0,M11.1.0";
	if (*p++ != ',' || (p = posix_rule(p, &z->start)) == NULL || *p++ != ',' ||
	    (p = posix_rule(p, &z->end)) == NULL || *p != '\0')
		return -1;
	return 0;
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Local seconds since the epoch (in the offset in force before it) of rule r in year y. */
static int64_t
rule_local(const struct tz_posix_rule *r, int64_t y)
{
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t day;

	if (r->kind == 'J') {
		day = tz_days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60);
	} else if (r->kind == 'N') {
		day = tz_days_from_civil(y, 1, 1) + r->n;
	} else {
		int64_t first = tz_days_from_civil(y, (unsigned)r->m, 1);
		int wday = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
		unsigned len = mdays[r->m - 1] + (r->m == 2 && is_leap(y));

		day = first + (r->d - wday + 7) % 7 + (r->w - 1) * 7;
		while (day >= first + len)
			day -= 7;
	}
	return day * 86400 + r->time;
}

static int32_t
posix_offset(const struct tz_zone *z, int64_t t)
{
	int64_t y, s, e;
	unsigned m, d;

	if (!z->has_dst)
		return z->std_off;
	tz_civil_from_days(floordiv(t + z->std_off, 86400), &y, &m, &d);
	s = rule_local(&z->start, y) - z->std_off;
	e = rule_local(&z->end, y) - z->dst_off;
	if (s < e)
		return t >= s && t < e ? z->dst_off : z->std_off;
	return t >= e && t < s ? z->std_off : z->dst_off;
}

struct tz_zone *
tz_from_posix(const char *s)
{
	struct tz_zone *z = calloc(1, sizeof(*z));

	if (z != NULL && posix_parse(z, s) == -1) {
		free(z);
		z = NULL;
	}
	return z;
}

/* --- TZif --------------------------------------------------------------------------- */

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Parse buf[0..len); -1 with *why. */
static int
tzif_parse(struct tz_zone *z, const unsigned char *buf, size_t len, const char **why)
{
	size_t cnt[6], off = 0, block, tsize = 4;
	const unsigned char *p;
	int version;

	*why = "not a TZif file";
	if (len < 44 || memcmp(buf, "TZif", 4) != 0)
		return -1;
	version = buf[4] == 0 ? 1 : buf[4] - '0';
	for (;;) {
		if (len - off < 44)
			return -1;
		for (int i = 0; i < 6; i++)
			cnt[i] = be32(buf + off + 20 + 4 * i);
		/* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
		if (cnt[3] > 100000 || cnt[4] == 0 || cnt[4] > 256 || cnt[5] > 100000 ||
		    cnt[2] > 100000 || cnt[0] > 256 || cnt[1] > 256)
			return -1;
		block = cnt[3] * tsize + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * (tsize + 4) +
		        cnt[1] + cnt[0];
		if (len - off - 44 < block)
			return -1;
		if (version >= 2 && tsize == 4) {
			off += 44 + block;
			tsize = 8;
			continue;
		}
		break;
	}
	p = buf + off + 44;
	z->ntrans = cnt[3];
	z->ntypes = cnt[4];
	z->trans = calloc(z->ntrans + 1, sizeof(*z->trans));
	z->idx = calloc(z->ntrans + 1, 1);
	z->utoff = calloc(z->ntypes, sizeof(*z->utoff));
	*why = "out of memory";
	if (z->trans == NULL || z->idx == NULL || z->utoff == NULL)
		return -1;
	*why = "corrupt TZif file";
	for (size_t i = 0; i < z->ntrans; i++, p += tsize)
		z->trans[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
	for (size_t i = 0; i < z->ntrans; i++, p++) {
		if (*p >= z->ntypes)
			return -1;
		z->idx[i] = *p;
	}
	for (size_t i = 0; i < z->ntypes; i++, p += 6)
		z->utoff[i] = (int32_t)be32(p);
	p += cnt[5] + cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
	if (version >= 2 && p < buf + len && *p == '\n') {
		const unsigned char *nl = memchr(p + 1, '\n', (size_t)(buf + len - p - 1));
		char footer[128];

		if (nl != NULL && nl > p + 1 && (size_t)(nl - p - 1) < sizeof(footer)) {
			memcpy(footer, p + 1, (size_t)(nl - p - 1));
			footer[nl - p - 1] = '\0';
			if (posix_parse(z, footer) == -1) {
				*why = "bad POSIX TZ string in TZif footer";
				return -1;
			}
		}
	}
	return 0;
}

void
tz_free(struct tz_zone *z)
{
	if (z == NULL)
		return;
	free(z->trans);
	free(z->idx);
	free(z->utoff);
	free(z);
}

static int
zone_name_ok(const char *name)
{
	if (*name == '\0' || *name == '/' || strstr(name, "..") != NULL || strlen(name) > 200)
		return 0;
	for (const char *c = name; *c != '\0'; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '/' || *c == '_' || *c == '-' ||
		      *c == '+' || *c == '.'))
			return 0;
	return 1;
}

struct tz_zone *
tz_load(const char *name, const char **why)
{
	char path[512];
	const char *dir = getenv("TZDIR");
	unsigned char *buf = NULL;
	struct tz_zone *z;
	size_t len = 0;
	FILE *f;

	if (name != NULL && !zone_name_ok(name)) {
		*why = "invalid zone name";
		return NULL;
	}
	if (dir == NULL || *dir == '\0')
		dir = "/usr/share/zoneinfo";
	if (name == NULL)
		snprintf(path, sizeof(path), "/etc/localtime");
	else
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "rb")) == NULL) {
		/* UTC needs no file: a bare system (or /etc/localtime missing) still works */
		if (name == NULL || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
			return tz_from_posix("UTC0");
		*why = errno == ENOENT ? "unknown time zone" : "cannot read time zone file";
		return NULL;
	}
	*why = "out of memory";
	if ((buf = malloc(TZ_MAX_FILE)) == NULL || (z = calloc(1, sizeof(*z))) == NULL) {
		fclose(f);
		free(buf);
		return NULL;
	}
	len = fread(buf, 1, TZ_MAX_FILE, f);
	fclose(f);
	if (tzif_parse(z, buf, len, why) == -1) {
		free(buf);
		tz_free(z);
		return NULL;
	}
	free(buf);
	return z;
}

int32_t
tz_offset(const struct tz_zone *z, int64_t t)
{
	size_t lo, hi;

	if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
		if (z->has_posix)
			return posix_offset(z, t);
		if (z->ntrans == 0)
			return z->ntypes > 0 ? z->utoff[0] : 0;
	}
	if (t < z->trans[0])
		return z->utoff[0];
	lo = 0;
	hi = z->ntrans; /* trans[lo] <= t < trans[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->utoff[z->idx[lo]];
}
