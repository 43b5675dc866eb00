#!/usr/bin/env bash
# Forward mode keeps a name's answer for its records' TTL, at most the resolver's valid=:
# a TTL-1 name is asked again after a second, a TTL-300 name only once valid= (3s) has
# passed; an AAAA-only name reaches an origin on ::1; /etc/hosts answers without a query;
# the hosts file is read again on a reload that changes nothing else, and with valid=30s
# the first request after that reload already follows the edit: a name whose address
# changed reaches the new address, a name added to the file (cached as "no such name")
# now resolves (PROXYD_TEST_HOSTS, honoured by builds configured with --enable-test-hooks;
# others skip those points). A reload that only turns ipv6= on or shortens valid= drops the
# answers cached under the old setting (the name is asked again at once); one that changes
# neither, or lengthens valid=, keeps them.
. "$TESTLIB"
plan 16

start_origin o1
start_origin o6 -a ::1
start_origin h2 -a 127.0.0.2 -p "$o1_port"
[ "$h2_port" = "$o1_port" ] || bail "second origin did not get port $o1_port"
# a copy of /etc/hosts (where localhost comes from) plus a name of the test's own
{ cat /etc/hosts; printf '127.0.0.1 filehost.test\n'; } >"$T/hosts"
zone="$T/zone"
dns_set "$zone" "short.test A 127.0.0.1 1
long.test A 127.0.0.1 300
six.test AAAA ::1 300
added.test NXDOMAIN
both.test A 127.0.0.1 300
both.test AAAA ::1 300"
start_dnsd dns "$zone"

port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
resolver 127.0.0.1:$dns_port valid=3s;
server {
	listen 127.0.0.1:$port;
	mode forward;
}
CONF
PROXYD_TEST_HOSTS=$T/hosts start_proxyd "$T/proxyd.conf" "$port"
get() { curl -s --max-time 5 -x "http://127.0.0.1:$port" "$1"; }

get "http://short.test:$o1_port/" >/dev/null
is "$(get "http://short.test:$o1_port/")" "$o1_uuid" "a name from the DNS responder is served"
is "$(dns_count dns short.test A)" 1 "a second request within the TTL asks no one"
sleep 1.5
get "http://short.test:$o1_port/" >/dev/null
is "$(dns_count dns short.test A)" 2 "after the record's TTL (1s) the name is asked again"

get "http://long.test:$o1_port/" >/dev/null
sleep 1.5
get "http://long.test:$o1_port/" >/dev/null
a=$(dns_count dns long.test A)
sleep 2
get "http://long.test:$o1_port/" >/dev/null
is "$a:$(dns_count dns long.test A)" "1:2" "a TTL of 300s is kept for valid=3s, no longer"

is "$(get "http://six.test:$o6_port/")" "$o6_uuid" "an AAAA-only name reaches an origin on ::1"
is "$(get "http://localhost:$o1_port/")" "$o1_uuid" "localhost comes from the hosts file"
is "$(dns_count dns localhost)" 0 "and no query was sent for it"

if [ "$(get "http://filehost.test:$o1_port/")" = "$o1_uuid" ]; then
	{ cat /etc/hosts; printf '127.0.0.2 filehost.test\n'; } >"$T/hosts"
	kill -HUP "$PROXYD_PID"
	got=""
	for _ in $(seq 1 80); do # the old answer lives valid=3s
		got=$(get "http://filehost.test:$o1_port/")
		[ "$got" = "$h2_uuid" ] && break
		sleep 0.1
	done
	is "$got" "$h2_uuid" "a reload reads the hosts file again: the new address serves"
	is "$(dns_count dns filehost.test)" 0 "hosts-file names never reach the DNS server"
else
	pass "# SKIP PROXYD_TEST_HOSTS is not honoured (proxyd built without --enable-test-hooks)"
	pass "# SKIP PROXYD_TEST_HOSTS is not honoured"
fi

# valid=30s: cached answers would outlive the test; an edit must not wait for them
stop_proxyd >/dev/null
{ cat /etc/hosts; printf '127.0.0.1 edited.test\n'; } >"$T/hosts"
port=$(free_port_static)
write_conf30() { # write_conf30 [GEN]: a forward server whose responses carry X-Gen: GEN
	cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
resolver 127.0.0.1:$dns_port valid=30s;
server {
	listen 127.0.0.1:$port;
	mode forward;
	add_header X-Gen ${1:-1};
}
CONF
}
# wait_gen GEN: after a SIGHUP, until the worker serves a response with X-Gen: GEN (a
# numeric address, so this asks the resolver nothing)
wait_gen() {
	local gen=""
	for _ in $(seq 1 100); do
		gen=$(curl -s -o /dev/null -D - --max-time 5 -x "http://127.0.0.1:$port" \
			"http://127.0.0.1:$o1_port/" | tr -d '\r' | sed -n 's/^X-Gen: //p')
		[ "$gen" = "$1" ] && return 0
		sleep 0.05
	done
	diag "the reload was not applied: X-Gen '$gen'"
}
write_conf30 1
PROXYD_TEST_HOSTS=$T/hosts start_proxyd "$T/proxyd.conf" "$port"
if [ "$(get "http://edited.test:$o1_port/")" = "$o1_uuid" ]; then
	pass "valid=30s: a hosts-file name is served from its address"
	get "http://added.test:$o1_port/" >/dev/null # "no such name", cached for 5s
	a=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -x "http://127.0.0.1:$port" \
		"http://added.test:$o1_port/")
	n=$(dns_count dns added.test A)
	{ cat /etc/hosts; printf '127.0.0.2 edited.test\n127.0.0.1 added.test\n'; } >"$T/hosts"
	write_conf30 2
	kill -HUP "$PROXYD_PID"
	wait_gen 2
	is "$(get "http://edited.test:$o1_port/")" "$h2_uuid" \
		"valid=30s: the first request after a reload that edits the hosts file reaches the new address"
	is "$n:$a:$(get "http://added.test:$o1_port/")" "1:502:$o1_uuid" \
		"a name cached as 'no such name' and then added to the hosts file resolves after the reload"
else
	pass "# SKIP PROXYD_TEST_HOSTS is not honoured (proxyd built without --enable-test-hooks)"
	pass "# SKIP PROXYD_TEST_HOSTS is not honoured"
	pass "# SKIP PROXYD_TEST_HOSTS is not honoured"
fi

# Only ipv6= or valid= changes: the servers are the same, but what is cached is not what the
# new setting would have cached. valid= stays far above the test's run time, so every
# count below is of cache decisions, not of expiries.
stop_proxyd >/dev/null
write_conf_r() { # write_conf_r VALID IPV6 GEN
	cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
resolver 127.0.0.1:$dns_port valid=$1 ipv6=$2;
server {
	listen 127.0.0.1:$port;
	mode forward;
	add_header X-Gen $3;
}
CONF
}
reload_r() { # reload_r VALID IPV6 GEN, then one request for both.test
	write_conf_r "$@"
	kill -HUP "$PROXYD_PID"
	wait_gen "$3"
	get "http://both.test:$o1_port/" >/dev/null
}
counts() { echo "$(dns_count dns both.test A):$(dns_count dns both.test AAAA)"; }
write_conf_r 60s off 1
start_proxyd "$T/proxyd.conf" "$port"
get "http://both.test:$o1_port/" >/dev/null
is "$(get "http://both.test:$o1_port/"):$(counts)" "$o1_uuid:1:0" \
	"ipv6=off: one A query, no AAAA query, the second request from the cache"
reload_r 60s on 2
is "$(counts)" "2:1" "a reload that only turns ipv6= on drops the A-only answer: A and AAAA asked"
reload_r 20s on 3
is "$(counts)" "3:2" "a reload that only shortens valid= drops the answers kept for the longer one"
before=$(counts)
reload_r 20s on 4
reload_r 40s on 5
is "$(counts)" "$before" "a reload that keeps both settings, or lengthens valid=, keeps the answers"
