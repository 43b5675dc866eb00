/*
 * dnsd: a tiny authoritative DNS responder for proxyd's integration tests (`resolver`,
 * `server NAME resolve`, forward-mode name resolution), and a one-shot client to test it.
 *
 * Plain sockets and ppoll(), no DNS library. It answers A and AAAA questions of class IN
 * from a zone file that is re-read whenever it changes (checked on every query), and logs
 * one line per query on stderr, so tests can count what reached it. It is strict about what
 * it parses: a query that is not exactly one well-formed question (plus an optional EDNS
 * OPT record, which is ignored) gets no answer at all.
 *
 * Zone file, one record per line, '#' starts a comment:
 *   NAME A|AAAA ADDRESS [TTL]   several lines for one name give several answers
 *   NAME NXDOMAIN|SERVFAIL|TIMEOUT   (TIMEOUT: never answer); the name's only line
 * Names are case-insensitive, the trailing dot is optional, the default TTL is 1.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN        12
#define NAME_TEXT_MAX  254 /* dotted text of a 255-octet wire name, and its NUL */
#define UDP_MAX        512 /* answer size without EDNS (RFC 1035 4.2.1) */
#define MSG_MAX        4096
#define TCP_TIMEOUT_S  2
#define CLIENT_WAIT_MS 2000
#define DEFAULT_TTL    1
#define T_A            1
#define T_AAAA         28
#define T_OPT          41
#define C_IN           1
#define F_QR           0x8000
#define F_AA           0x0400
#define F_TC           0x0200
#define F_RD           0x0100
#define RC_NOERROR     0
#define RC_SERVFAIL    2
#define RC_NXDOMAIN    3
#define RC_SILENT      (-1) /* TIMEOUT: no answer */

enum rec_kind {
	REC_A,
	REC_AAAA,
	REC_NXDOMAIN,
	REC_SERVFAIL,
	REC_TIMEOUT,
};

struct rec {
	char r_name[NAME_TEXT_MAX];
	enum rec_kind r_kind;
	unsigned char r_addr[16];
	uint32_t r_ttl;
};

struct zone {
	const char *z_path;
	struct rec *z_recs;
	size_t z_nrecs;
	struct stat z_st; /* of the file the records came from */
};

static volatile sig_atomic_t stop;

static void
usage(void)
{
	fprintf(stderr, "usage: dnsd [-a ADDR] [-p PORT] -z ZONEFILE\n"
	                "       dnsd -q NAME A|AAAA|NUMBER SERVER PORT\n"
	                "  -p 0 picks a port and prints 'READY port=PORT' once listening (UDP,\n"
	                "  and TCP if that port is free); one 'query NAME TYPE -> RCODE' line per\n"
	                "  query on stderr. -q sends one query over UDP and prints the addresses,\n"
	                "  NODATA, NXDOMAIN, SERVFAIL, RCODE=N or TIMEOUT (exit 1)\n");
}

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* Zone names: labels of [A-Za-z0-9_-], 1 to 63 bytes; lower-cased, trailing dot removed. */
static int
name_norm(const char *in, char *out)
{
	size_t len = strlen(in), label = 0, i;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len >= NAME_TEXT_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((isalnum(ch) || ch == '-' || ch == '_') && ++label <= 63) {
			ch = (unsigned char)tolower(ch);
		} else {
			return -1;
		}
		out[i] = (char)ch;
	}
	out[len] = '\0';
	return 0;
}

/* Parses the zone file's fields f[0..nf) into r; returns NULL or the reason it is invalid. */
static const char *
rec_parse(struct rec *r, char **f, int nf)
{
	static const char *const kinds[] = {"A", "AAAA", "NXDOMAIN", "SERVFAIL", "TIMEOUT"};
	unsigned long ttl;
	char *end;
	int k;

	if (name_norm(f[0], r->r_name) == -1)
		return "invalid name";
	for (k = 0; k <= REC_TIMEOUT && strcasecmp(f[1], kinds[k]) != 0; k++)
		continue;
	if (k > REC_TIMEOUT)
		return "unknown type (A, AAAA, NXDOMAIN, SERVFAIL, TIMEOUT)";
	r->r_kind = (enum rec_kind)k;
	r->r_ttl = DEFAULT_TTL;
	if (r->r_kind != REC_A && r->r_kind != REC_AAAA)
		return nf == 2 ? NULL : "NXDOMAIN, SERVFAIL and TIMEOUT take no value";
	if (nf < 3)
		return "missing address";
	if (inet_pton(r->r_kind == REC_A ? AF_INET : AF_INET6, f[2], r->r_addr) != 1)
		return "invalid address";
	if (nf == 4) {
		errno = 0;
		ttl = strtoul(f[3], &end, 10);
		if (!isdigit((unsigned char)f[3][0]) || *end != '\0' || errno != 0 ||
		    ttl > INT32_MAX)
			return "invalid TTL";
		r->r_ttl = (uint32_t)ttl;
	}
	return NULL;
}

/* Reads the zone file; on error, says why on stderr and keeps the zone as it was. */
static int
zone_load(struct zone *z)
{
	struct rec *recs = NULL, *tmp;
	const char *why = NULL;
	char line[1024];
	unsigned lineno = 0;
	size_t n = 0, cap = 0, i, j;
	struct stat st;
	FILE *fp;

	if ((fp = fopen(z->z_path, "r")) == NULL || fstat(fileno(fp), &st) == -1) {
		fprintf(stderr, "dnsd: %s: %s\n", z->z_path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	while (why == NULL && fgets(line, sizeof(line), fp) != NULL) {
		char *f[5], *p, *save;
		int nf = 0;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			why = "line too long";
			break;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (p = strtok_r(line, " \t\r\n", &save); p != NULL && nf < 5;
		     p = strtok_r(NULL, " \t\r\n", &save))
			f[nf++] = p;
		if (nf == 0)
			continue;
		if (nf < 2 || nf > 4) {
			why = "expected NAME TYPE [VALUE [TTL]]";
			break;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((tmp = realloc(recs, cap * sizeof(*recs))) == NULL) {
				why = "out of memory";
				break;
			}
			recs = tmp;
		}
		memset(&recs[n], 0, sizeof(recs[n]));
		if ((why = rec_parse(&recs[n], f, nf)) == NULL)
			n++;
	}
	/* An error answer is all there is to say about its name. */
	for (i = 0; why == NULL && i < n; i++)
		for (j = 0; j < n; j++)
			if (i != j && recs[i].r_kind > REC_AAAA &&
			    strcmp(recs[i].r_name, recs[j].r_name) == 0) {
				fprintf(stderr,
				        "dnsd: %s: %s: NXDOMAIN, SERVFAIL or TIMEOUT must "
				        "be the name's only line\n",
				        z->z_path, recs[i].r_name);
				why = "";
				break;
			}
	if (why == NULL && ferror(fp))
		why = strerror(errno);
	fclose(fp);
	if (why != NULL) {
		if (*why != '\0')
			fprintf(stderr, "dnsd: %s:%u: %s\n", z->z_path, lineno, why);
		free(recs);
		return -1;
	}
	free(z->z_recs);
	z->z_recs = recs;
	z->z_nrecs = n;
	z->z_st = st;
	return 0;
}

/*
 * Re-reads the zone if the file changed. Tests replace it with rename(2), so the inode
 * changes even when size and mtime (to the nanosecond) happen to stay the same.
 */
static void
zone_check(struct zone *z)
{
	struct stat st;

	if (stat(z->z_path, &st) == -1)
		return;
	if (st.st_ino != z->z_st.st_ino || st.st_dev != z->z_st.st_dev ||
	    st.st_size != z->z_st.st_size || st.st_mtim.tv_sec != z->z_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != z->z_st.st_mtim.tv_nsec) {
		if (zone_load(z) == -1)
			fprintf(stderr, "dnsd: keeping the previous zone\n");
	}
}

/*
 * Answers the query q[0..len) into out (room for MSG_MAX bytes; UDP answers are cut at
 * 512 bytes, or at the EDNS payload size, with TC set). Returns the answer's length, 0 for
 * no answer (TIMEOUT), or -1 if the query is malformed (nothing is logged).
 */
static int
dns_answer(struct zone *z, const unsigned char *q, size_t len, int udp, unsigned char *out)
{
	static const char *const rcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN"};
	char name[NAME_TEXT_MAX], tbuf[16];
	size_t off = HDR_LEN, qend, tlen = 0, max = udp ? UDP_MAX : MSG_MAX, i;
	unsigned flags, qtype, nans = 0;
	int known = 0, rcode = RC_NOERROR;

	if (len < HDR_LEN)
		return -1;
	flags = get16(q + 2);
	if ((flags & F_QR) || (flags >> 11 & 0xf) != 0 || get16(q + 4) != 1 || get16(q + 6) != 0 ||
	    get16(q + 8) != 0 || get16(q + 10) > 1)
		return -1;
	for (;;) {
		size_t l;

		if (off >= len)
			return -1;
		if ((l = q[off++]) == 0)
			break;
		/* Labels only (no compression in a question), 255 octets at most. */
		if (l > 63 || off + l > len || off + l - HDR_LEN + 1 > 255)
			return -1;
		if (tlen > 0)
			name[tlen++] = '.';
		for (i = 0; i < l; i++, off++) {
			if (q[off] <= ' ' || q[off] >= 0x7f || q[off] == '.')
				return -1;
			name[tlen++] = (char)tolower(q[off]);
		}
	}
	name[tlen] = '\0';
	if (off + 4 > len || get16(q + off + 2) != C_IN)
		return -1;
	qtype = get16(q + off);
	off += 4;
	qend = off;
	if (get16(q + 10) == 1) {
		/* EDNS OPT: root name, type 41, payload size, TTL, RDATA; its options ignored. */
		if (off + 11 > len || q[off] != 0 || get16(q + off + 1) != T_OPT)
			return -1;
		if (udp && get16(q + off + 3) > max)
			max = get16(q + off + 3) < MSG_MAX ? get16(q + off + 3) : MSG_MAX;
		off += 11 + get16(q + off + 9);
	}
	if (off != len)
		return -1;

	for (i = 0; i < z->z_nrecs; i++) {
		if (strcmp(z->z_recs[i].r_name, name) != 0)
			continue;
		known = 1;
		if (z->z_recs[i].r_kind == REC_NXDOMAIN)
			rcode = RC_NXDOMAIN;
		else if (z->z_recs[i].r_kind == REC_SERVFAIL)
			rcode = RC_SERVFAIL;
		else if (z->z_recs[i].r_kind == REC_TIMEOUT)
			rcode = RC_SILENT;
	}
	if (!known)
		rcode = RC_NXDOMAIN;

	memcpy(out, q, qend);
	put16(out + 2, F_QR | F_AA | (flags & F_RD) | (rcode > 0 ? (unsigned)rcode : 0));
	memset(out + 6, 0, 6);
	off = qend;
	for (i = 0; rcode == RC_NOERROR && i < z->z_nrecs; i++) {
		const struct rec *r = &z->z_recs[i];
		size_t rdlen = r->r_kind == REC_A ? 4 : 16;

		if (strcmp(r->r_name, name) != 0 || qtype != (r->r_kind == REC_A      ? T_A
		                                              : r->r_kind == REC_AAAA ? T_AAAA
		                                                                      : 0))
			continue;
		if (off + 12 + rdlen > max) {
			put16(out + 2, get16(out + 2) | F_TC);
			break;
		}
		put16(out + off, 0xc000 | HDR_LEN); /* the name is the question's */
		put16(out + off + 2, qtype);
		put16(out + off + 4, C_IN);
		put16(out + off + 6, r->r_ttl >> 16);
		put16(out + off + 8, r->r_ttl & 0xffff);
		put16(out + off + 10, (unsigned)rdlen);
		memcpy(out + off + 12, r->r_addr, rdlen);
		off += 12 + rdlen;
		nans++;
	}
	put16(out + 6, nans);

	if (qtype == T_A || qtype == T_AAAA)
		snprintf(tbuf, sizeof(tbuf), "%s", qtype == T_A ? "A" : "AAAA");
	else
		snprintf(tbuf, sizeof(tbuf), "TYPE%u", qtype);
	fprintf(stderr, "query %s %s -> %s\n", tlen > 0 ? name : ".", tbuf,
	        rcode == RC_SILENT ? "TIMEOUT" : rcodes[rcode]);
	return rcode == RC_SILENT ? 0 : (int)off;
}

static void
udp_serve(struct zone *z, int fd)
{
	unsigned char q[MSG_MAX + 1], a[MSG_MAX];
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	ssize_t n;
	int alen;

	n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&ss, &sslen);
	if (n <= 0 || n > MSG_MAX)
		return;
	zone_check(z);
	if ((alen = dns_answer(z, q, (size_t)n, 1, a)) > 0)
		sendto(fd, a, (size_t)alen, 0, (struct sockaddr *)&ss, sslen);
}

static int
read_full(int fd, unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One TCP client at a time, queries until it closes or is idle for TCP_TIMEOUT_S. */
static void
tcp_serve(struct zone *z, int lfd)
{
	unsigned char q[MSG_MAX], a[2 + MSG_MAX];
	struct timeval tv = {TCP_TIMEOUT_S, 0};
	unsigned qlen;
	int fd, alen;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (!stop && read_full(fd, q, 2) == 0 && (qlen = get16(q)) <= MSG_MAX &&
	       read_full(fd, q, qlen) == 0) {
		zone_check(z);
		if ((alen = dns_answer(z, q, qlen, 0, a + 2)) <= 0)
			continue;
		put16(a, (unsigned)alen);
		if (send(fd, a, (size_t)alen + 2, MSG_NOSIGNAL) != alen + 2)
			break;
	}
	close(fd);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
serve(const char *addr, const char *port, const char *zonefile)
{
	struct zone z = {.z_path = zonefile};
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *res;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct pollfd pfd[2];
	struct sigaction sa;
	sigset_t block, orig;
	char serv[NI_MAXSERV];
	int error, on = 1, nfd = 1, rv = 1;

	pfd[1].fd = -1;
	if (zone_load(&z) == -1)
		return 1;
	if ((error = getaddrinfo(addr, port, &hints, &res)) != 0) {
		fprintf(stderr, "dnsd: %s: %s\n", addr, gai_strerror(error));
		free(z.z_recs);
		return 1;
	}
	pfd[0].fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (pfd[0].fd == -1 || bind(pfd[0].fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    getsockname(pfd[0].fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    getnameinfo((struct sockaddr *)&ss, sslen, NULL, 0, serv, sizeof(serv),
	                NI_NUMERICSERV) != 0) {
		fprintf(stderr, "dnsd: UDP %s port %s: %s\n", addr, port, strerror(errno));
		goto done;
	}
	/* TCP on the same port if it is free: nice to have, UDP is what matters. */
	pfd[1].fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (pfd[1].fd != -1 &&
	    setsockopt(pfd[1].fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
	    bind(pfd[1].fd, (struct sockaddr *)&ss, sslen) == 0 && listen(pfd[1].fd, 16) == 0)
		nfd = 2;
	else
		fprintf(stderr, "dnsd: no TCP on port %s: %s\n", serv, strerror(errno));
	pfd[0].events = pfd[1].events = POLLIN;
	printf("READY port=%s\n", serv);
	fflush(stdout);

	/* SIGTERM/SIGINT only interrupt ppoll(), so the flag cannot be missed. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	while (!stop) {
		if (ppoll(pfd, (nfds_t)nfd, NULL, &orig) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "dnsd: poll: %s\n", strerror(errno));
			goto done;
		}
		if (pfd[0].revents & POLLIN)
			udp_serve(&z, pfd[0].fd);
		if (nfd == 2 && (pfd[1].revents & POLLIN))
			tcp_serve(&z, pfd[1].fd);
	}
	rv = 0;
done:
	if (pfd[0].fd != -1)
		close(pfd[0].fd);
	if (pfd[1].fd != -1)
		close(pfd[1].fd);
	freeaddrinfo(res);
	free(z.z_recs);
	return rv;
}

/* Skips a possibly compressed name in an answer. */
static int
skip_name(const unsigned char *m, size_t len, size_t *off)
{
	while (*off < len) {
		unsigned l = m[*off];

		if (l == 0 || (l & 0xc0) == 0xc0) {
			*off += l == 0 ? 1 : 2;
			return *off <= len ? 0 : -1;
		}
		if (l > 63)
			return -1;
		*off += 1 + l;
	}
	return -1;
}

/* -q: one query over UDP, the answer on stdout. Returns the exit status. */
static int
client(const char *name, const char *type, const char *server, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM,
	                         .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	unsigned char q[HDR_LEN + 255 + 4], a[MSG_MAX];
	size_t qlen = HDR_LEN, off, nl = strlen(name), i, start = 0;
	unsigned qtype, nans;
	unsigned long ul;
	char *end;
	struct addrinfo *res;
	struct pollfd pfd;
	char text[INET6_ADDRSTRLEN];
	ssize_t n;
	int error, rv = 1;

	if (strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0) {
		qtype = type[1] == '\0' ? T_A : T_AAAA;
	} else {
		ul = strtoul(type, &end, 10);
		if (!isdigit((unsigned char)type[0]) || *end != '\0' || ul == 0 || ul > 0xffff) {
			fprintf(stderr, "dnsd: bad type: %s\n", type);
			return 2;
		}
		qtype = (unsigned)ul;
	}
	if (nl > 0 && name[nl - 1] == '.')
		nl--;
	memset(q, 0, HDR_LEN);
	put16(q, (unsigned)(getpid() ^ time(NULL)) & 0xffff);
	put16(q + 2, F_RD);
	put16(q + 4, 1);
	/* The name goes out as given (case kept), label by label. */
	for (i = 0; i <= nl; i++) {
		if (i < nl && name[i] != '.')
			continue;
		if (i == start || i - start > 63 || qlen + 1 + (i - start) + 1 > HDR_LEN + 255) {
			fprintf(stderr, "dnsd: bad name: %s\n", name);
			return 2;
		}
		q[qlen++] = (unsigned char)(i - start);
		memcpy(q + qlen, name + start, i - start);
		qlen += i - start;
		start = i + 1;
	}
	q[qlen++] = 0;
	put16(q + qlen, qtype);
	put16(q + qlen + 2, C_IN);
	qlen += 4;

	if ((error = getaddrinfo(server, port, &hints, &res)) != 0) {
		fprintf(stderr, "dnsd: %s: %s\n", server, gai_strerror(error));
		return 2;
	}
	pfd.fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	pfd.events = POLLIN;
	if (pfd.fd == -1 || connect(pfd.fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    send(pfd.fd, q, qlen, 0) != (ssize_t)qlen) {
		fprintf(stderr, "dnsd: %s port %s: %s\n", server, port, strerror(errno));
		goto done;
	}
	if (poll(&pfd, 1, CLIENT_WAIT_MS) != 1 || (n = recv(pfd.fd, a, sizeof(a), 0)) <= 0) {
		printf("TIMEOUT\n");
		goto done;
	}
	/* Our id, a response, our question echoed; then A and AAAA answers are printed. */
	if ((size_t)n < qlen || get16(a) != get16(q) || !(get16(a + 2) & F_QR) ||
	    memcmp(a + 4, q + 4, 2) != 0 || memcmp(a + HDR_LEN, q + HDR_LEN, qlen - HDR_LEN) != 0) {
		fprintf(stderr, "dnsd: malformed response\n");
		goto done;
	}
	rv = 0;
	if ((get16(a + 2) & 0xf) != RC_NOERROR) {
		if ((get16(a + 2) & 0xf) == RC_NXDOMAIN || (get16(a + 2) & 0xf) == RC_SERVFAIL)
			printf("%s\n",
			       (get16(a + 2) & 0xf) == RC_NXDOMAIN ? "NXDOMAIN" : "SERVFAIL");
		else
			printf("RCODE=%u\n", get16(a + 2) & 0xf);
		goto done;
	}
	if ((nans = get16(a + 6)) == 0)
		printf("NODATA\n");
	for (off = qlen; nans > 0; nans--) {
		unsigned t, rdlen;

		if (skip_name(a, (size_t)n, &off) == -1 || off + 10 > (size_t)n ||
		    off + 10 + get16(a + off + 8) > (size_t)n) {
			fprintf(stderr, "dnsd: malformed answer\n");
			rv = 1;
			break;
		}
		t = get16(a + off);
		rdlen = get16(a + off + 8);
		off += 10;
		if ((t == T_A && rdlen == 4) || (t == T_AAAA && rdlen == 16))
			printf("%s\n", inet_ntop(t == T_A ? AF_INET : AF_INET6, a + off, text,
			                         sizeof(text)));
		off += rdlen;
	}
done:
	if (pfd.fd != -1)
		close(pfd.fd);
	freeaddrinfo(res);
	return rv;
}

int
main(int argc, char *argv[])
{
	const char *addr = "127.0.0.1", *port = "0", *zonefile = NULL;
	int ch, query = 0;

	while ((ch = getopt(argc, argv, "a:p:z:qh")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 'z':
			zonefile = optarg;
			break;
		case 'q':
			query = 1;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (query) {
		if (argc - optind != 4) {
			usage();
			return 2;
		}
		return client(argv[optind], argv[optind + 1], argv[optind + 2], argv[optind + 3]);
	}
	if (zonefile == NULL || optind != argc) {
		usage();
		return 2;
	}
	return serve(addr, port, zonefile);
}
