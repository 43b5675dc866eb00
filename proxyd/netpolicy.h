/*
 * netpolicy.h - network policy of forward mode: which ports CONNECT may reach
 * (`connect_ports`), which destinations `deny_private_destinations on` refuses, and which
 * clients the "no open proxy" default lets in.
 *
 * Contract: pure functions, no I/O, no logging, no libevent. np_ports_parse() is the only
 * function that allocates; everything else reads its arguments and returns a value, so it
 * may be called from any thread. Addresses are classified by their numeric value only (no
 * resolution); an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is classified as the IPv4
 * address it carries, so a client cannot dodge a rule by writing an address the other way.
 */
#ifndef PROXYD_NETPOLICY_H
#define PROXYD_NETPOLICY_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

/* A closed range of ports, lo <= hi, both in 1..65535. */
struct np_range {
	uint16_t lo;
	uint16_t hi;
};

/* A sorted list of disjoint, non-adjacent ranges (overlaps and neighbours are merged). */
struct np_ports {
	size_t n;
	struct np_range r[];
};

/*
 * Parse the arguments of `connect_ports`: each word is a port ("443") or a range
 * ("9000-9100"), decimal digits only, in 1..65535, lo <= hi. Returns a malloc'd list the
 * caller frees with np_ports_free(), or NULL with *err set to a malloc'd reason such as
 * `bad port range "9100-9000"` or `bad port "0"` (nwords == 0: `no ports`).
 */
struct np_ports *np_ports_parse(char *const *words, size_t nwords, char **err);
void np_ports_free(struct np_ports *p);
/* 1 when port is in one of the ranges (binary search), else 0; p NULL allows nothing. */
int np_ports_allows(const struct np_ports *p, unsigned port);

/*
 * The class of an address. The first matching class wins in this order: metadata
 * (169.254.169.254, fd00:ec2::254), unspecified (0.0.0.0/8, ::), loopback (127/8, ::1),
 * private (10/8, 172.16/12, 192.168/16, 100.64/10 CGNAT, fc00::/7 ULA, fec0::/10
 * deprecated site-local), link-local (169.254/16, fe80::/10), broadcast (255.255.255.255),
 * multicast (224/4, ff00::/8), reserved (240/4, 192.0.0/24, 198.18/15, 192.0.2/24,
 * 198.51.100/24, 203.0.113/24, 2001:db8::/32, 100::/64 discard, ::/96 IPv4-compatible,
 * and any family other than AF_INET/AF_INET6), public (everything else).
 * NAT64 addresses (64:ff9b::/96) are classified as the IPv4 address they embed.
 */
enum np_class {
	NP_PUBLIC = 0,
	NP_METADATA,
	NP_UNSPECIFIED,
	NP_LOOPBACK,
	NP_PRIVATE,
	NP_LINKLOCAL,
	NP_BROADCAST,
	NP_MULTICAST,
	NP_RESERVED,
};

enum np_class np_classify(const struct sockaddr *sa);
/* ipv4: the address in host byte order. */
enum np_class np_classify_v4(uint32_t ipv4);
/* ipv6: the 16 bytes of the address in network order. */
enum np_class np_classify_v6(const uint8_t ipv6[16]);
/* A static lower-case name for logs: "public", "loopback", "private", ... */
const char *np_class_name(enum np_class c);

/* `deny_private_destinations on`: 1 for every class but NP_PUBLIC. */
int np_destination_denied(const struct sockaddr *sa);
/*
 * The "no open proxy" default: 1 when the client is loopback, private (incl. ULA and
 * CGNAT), link-local or the metadata address (which is link-local), else 0.
 */
int np_client_is_local(const struct sockaddr *sa);

#endif /* PROXYD_NETPOLICY_H */
