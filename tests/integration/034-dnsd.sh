#!/usr/bin/env bash
# The test DNS responder itself (tests/dnsd), as the resolver tests will use it: A, several
# A, AAAA, NODATA, NXDOMAIN, SERVFAIL and TIMEOUT answers through its own client mode
# (`dnsd -q`); a zone rewritten with dns_set is seen by the very next query, even twice
# within one second with the same size; a broken zone keeps the previous one; the query log
# counts queries; raw queries over UDP (with an EDNS OPT record) and TCP get the same
# answer with the name compressed; malformed queries get no answer and no log line.
. "$TESTLIB"
plan 22

# hexq PORT udp|tcp HEX [LEN]: sends the bytes HEX (pairs, no spaces) to dnsd and prints
# what comes back within a second as hex pairs separated by spaces: one datagram over UDP,
# LEN bytes over TCP.
hexq() {
	local bytes
	bytes=$(printf '%s' "$3" | sed 's/../\\x&/g')
	(
		exec 3<>"/dev/$2/127.0.0.1/$1" || exit 1
		# one write(2), so that UDP sends one datagram (printf may split at 0a)
		printf "$bytes" | dd bs=4096 iflag=fullblock status=none >&3
		if [ "$2" = udp ]; then
			timeout 1 dd bs=4096 count=1 status=none <&3
		else
			timeout 5 head -c "$4" <&3
		fi | od -An -v -tx1 | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
	)
}

zone="$T/zone"
dns_set "$zone" \
	'# the test zone' \
	'www.example.com A 192.0.2.1' \
	'Multi.Test. A 192.0.2.10 300' \
	'multi.test A 192.0.2.11' \
	'v6.test AAAA 2001:db8::1' \
	'gone.test NXDOMAIN' \
	'broken.test SERVFAIL  # comment after a record' \
	'slow.test TIMEOUT'
# the TCP listener takes the UDP port's number when it is free; a parallel test may hold it
# (it is in the ephemeral range), so start again until both are up
for _ in 1 2 3 4 5; do
	start_dnsd ns "$zone"
	grep -q 'no TCP' "$T/dnsd-ns.err" || break
	kill "$ns_pid"
	wait "$ns_pid" 2>/dev/null
done
like "$ns_port" '^[0-9]+$' "dnsd -p 0 reports its port"

is "$(dns_query "$ns_port" www.example.com A)" "192.0.2.1" "an A record"
is "$(dns_query "$ns_port" WWW.Example.COM. A)" "192.0.2.1" \
	"names are case-insensitive, the trailing dot optional"
is "$(dns_query "$ns_port" multi.test A | tr '\n' ' ')" "192.0.2.10 192.0.2.11 " \
	"two A records give two answers, in zone order"
is "$(dns_query "$ns_port" v6.test AAAA)" "2001:db8::1" "an AAAA record"
is "$(dns_query "$ns_port" www.example.com AAAA)" "NODATA" \
	"a known name without records of the type: NOERROR, no answer"
is "$(dns_query "$ns_port" nowhere.test A)" "NXDOMAIN" "an unknown name is NXDOMAIN"
is "$(dns_query "$ns_port" gone.test AAAA)" "NXDOMAIN" "a NXDOMAIN line"
is "$(dns_query "$ns_port" broken.test A)" "SERVFAIL" "a SERVFAIL line"
out=$(dns_query "$ns_port" slow.test A)
is "$?:$out" "1:TIMEOUT" "a TIMEOUT name is never answered"

dns_set "$zone" 'www.example.com A 192.0.2.2' 'new.test A 192.0.2.3'
is "$(dns_query "$ns_port" www.example.com A)" "192.0.2.2" "a changed record is seen at once"
is "$(dns_query "$ns_port" new.test A):$(dns_query "$ns_port" multi.test A)" \
	"192.0.2.3:NXDOMAIN" "added and removed names are seen at once"
# two rewrites of the same size back to back, no query in between
dns_set "$zone" 'www.example.com A 192.0.2.4'
dns_set "$zone" 'www.example.com A 192.0.2.5'
is "$(dns_query "$ns_port" www.example.com A)" "192.0.2.5" \
	"two same-size rewrites within a second: the last one is served"
dns_set "$zone" 'www.example.com A 192.0.2.5' 'bad.test A 300.1.1.1'
is "$(dns_query "$ns_port" www.example.com A)" "192.0.2.5" "a broken zone keeps the previous one"
like "$(cat "$T/dnsd-ns.err")" 'zone:2: invalid address' "the broken line is reported"
dns_set "$zone" 'www.example.com A 192.0.2.6 60' 'v6.test AAAA 2001:db8::6'

# raw queries: id 1234, RD, www.example.com A IN
q=12340100000100000000000003777777076578616d706c6503636f6d0000010001
a='12 34 85 00 00 01 00 01 00 00 00 00 03 77 77 77 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01'
ans='c0 0c 00 01 00 01 00 00 00 3c 00 04 c0 00 02 06'
is "$(hexq "$ns_port" udp "$q")" "$a $ans" \
	"UDP: QR AA RD, question echoed, answer named by a pointer to it, TTL 60"
# the same with an EDNS OPT record (payload 1232, DO bit, an empty COOKIE option)
qe=${q:0:20}0001${q:24}00002904d0000080000004000a0000
is "$(hexq "$ns_port" udp "$qe")" "$a $ans" "UDP with EDNS: the OPT record is ignored"
is "$(hexq "$ns_port" tcp "0021$q" 51)" "00 31 $a $ans" "TCP on the same port, length-prefixed"

# malformed: a response (QR set), a trailing byte, a compression pointer in the question
is "$(hexq "$ns_port" udp "${q:0:4}8100${q:8}")" "" "a query with QR set is ignored"
is "$(hexq "$ns_port" udp "${q}00")" "" "a query with trailing bytes is ignored"
is "$(hexq "$ns_port" udp "${q:0:24}c00c00010001")" "" "a compressed question is ignored"

is "$(dns_count ns www.example.com A):$(dns_count ns www.example.com)" "8:9" \
	"the query log counts every answered query, and only those"
