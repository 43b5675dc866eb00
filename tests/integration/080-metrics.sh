#!/usr/bin/env bash
# GET /metrics on the admin endpoint: after a known sequence of requests (5 GETs answered
# 200, 2 answered 404 by the origin, 1 malformed head, a cache miss then a hit, a refused
# connect to a dead peer, a retry, a response timeout, a TLS handshake and a failed one, a
# CONNECT tunnel, an ACL denial, an unknown name and a 407 in forward servers, forward
# connects to origins refused and timed out) every counter is exactly what was done,
# across two workers (response head bytes: what the clients received); the body
# is Prometheus text format 0.0.4 (line grammar, HELP/TYPE before a family's samples, one
# block per family, label values escaped); a reload keeps the counters, drops a removed
# server's series and brings them back with their counts when the server returns.
. "$TESTLIB"
plan 67

start_origin o1
start_origin bh -N # accepts nothing: connects to it time out once its queue is full
zone="$T/zone"
dns_set "$zone" "app.test A 127.0.0.1
nx.test NXDOMAIN"
start_dnsd dns "$zone"
mkdir -p "$T/cache"
read -r rport cport fport dport admin tport sport aport xport <<<"$(free_ports 9)"
dead=$(dead_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=localhost -keyout "$T/tls.key" -out "$T/tls.pem" 2>/dev/null ||
	bail "cannot make a certificate"
hash=$(openssl passwd -6 'pw') || bail "openssl passwd failed"
printf 'kim:%s\n' "$hash" >"$T/users"

# conf WITH_CACHE_SERVER: the configuration, with or without the cache server
conf() {
	cat <<CONF
workers 2;
error_log stderr info;
resolver 127.0.0.1:$dns_port;
cache main { path $T/cache; max_size 16m; }
upstream "app\\"q" { server 127.0.0.1:$o1_port; }
upstream deadup { server 127.0.0.1:$dead; }
upstream flaky { server 127.0.0.1:$dead; server 127.0.0.1:$o1_port; }
upstream slow { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$sport; proxy_pass slow; proxy_read_timeout 300ms; }
server {
	listen 127.0.0.1:$tport tls;
	proxy_pass "app\\"q";
	tls_certificate $T/tls.pem;
	tls_certificate_key $T/tls.key;
}
server { listen 127.0.0.1:$aport; mode forward; auth basic realm="m" file $T/users; }
server { listen 127.0.0.1:$rport; proxy_pass "app\\"q"; access_log $T/access.log; }
server { listen 127.0.0.1:$dport; proxy_pass deadup; }
server {
	listen 127.0.0.1:$fport;
	mode forward;
	connect_ports $o1_port;
	deny ua ~ "BadBot";
	allow all;
	access_log $T/fwd.log;
}
server {
	listen 127.0.0.1:$xport;
	mode forward;
	connect_ports 1-65535;
	proxy_connect_timeout 300ms;
}
admin { listen 127.0.0.1:$admin; }
CONF
	if [ "$1" = 1 ]; then
		cat <<CONF
server { listen 127.0.0.1:$cport; proxy_pass flaky; cache main; }
CONF
	fi
}
conf 1 >"$T/proxyd.conf"
start_proxyd "$T/proxyd.conf" "$rport"
wait_port 127.0.0.1 "$admin" || bail "proxyd does not listen on the admin port $admin"

scrape() { curl -s -m 5 -o "$T/m.txt" -w '%{http_code}' "http://127.0.0.1:$admin/metrics"; }
# m NAME LABELS: the value of one sample of the last scrape ("" when absent)
m() {
	K="$1{$2}" awk '
		BEGIN { k = ENVIRON["K"]; if (k ~ /\{\}$/) k = substr(k, 1, length(k) - 2) }
		index($0, k " ") == 1 { print substr($0, length(k) + 2) }' "$T/m.txt"
}
R="server=\"127.0.0.1:$rport\",mode=\"reverse\""
C="server=\"127.0.0.1:$cport\",mode=\"reverse\""
F="server=\"127.0.0.1:$fport\",mode=\"forward\""
D="server=\"127.0.0.1:$dport\",mode=\"reverse\""
# wait_idle LABELS: until the server's connections are all closed (proxyd sees the
# clients' EOF a moment after they exit); at most 5 s
wait_idle() {
	for _ in $(seq 1 50); do
		scrape >/dev/null
		[ "$(m proxyd_connections_active "$1")" = 0 ] && [ "$(m proxyd_tunnels_active "$1")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

is "$(scrape)" 200 "GET /metrics answers 200"
is "$(m proxyd_requests_total "$R,code=\"2xx\"")" 0 "a fresh server has counted nothing"
is "$(m proxyd_config_generation "")" 1 "proxyd_config_generation is 1"

# the reverse server: raw requests, so the bytes of each head are known
rx=0
head_of() { printf 'GET %s HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n' "$1"; }
# headlen: the bytes of the response head on stdin (to the empty line, included)
headlen() { sed -n '1,/^\r$/p' | wc -c; }
get() { # get PATH: one request with Connection: close; prints the status
	head_of "$1" | raw 127.0.0.1 "$rport" >"$T/resp"
	headlen <"$T/resp" >>"$T/heads"
	status_of "$(cat "$T/resp")"
}
rx=$((5 * $(head_of /bytes/100 | wc -c) + 2 * $(head_of /status/404 | wc -c)))
n200=0
for i in 1 2 3 4 5; do [ "$(get /bytes/100)" = 200 ] && n200=$((n200 + 1)); done
is "$n200" 5 "5 GETs answered 200"
is "$(get /status/404)$(get /status/404)" 404404 "2 GETs answered 404 by the origin"
bad=$(printf 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' | raw 127.0.0.1 "$rport")
is "$(status_of "$bad")" 400 "a malformed request (two Host fields) answered 400"
printf '%s\n' "$bad" | headlen >>"$T/heads"

wait_idle "$R" || diag "connections still active"
is "$(m proxyd_requests_total "$R,code=\"2xx\"")" 5 "requests 2xx: 5"
is "$(m proxyd_requests_total "$R,code=\"4xx\"")" 3 "requests 4xx: 3 (2 from the origin, 1 refused)"
is "$(m proxyd_requests_total "$R,code=\"5xx\"")" 0 "requests 5xx: 0"
is "$(m proxyd_requests_rejected_total "$R")" 1 "rejected by the parser: 1"
is "$(m proxyd_connections_accepted_total "$R")" 9 "connections accepted: 8 and start_proxyd's probe"
is "$(m proxyd_connections_active "$R")" 0 "connections active: 0"
is "$(m proxyd_received_bytes_total "$R")" "$rx" "received bytes: the request heads ($rx)"
sent=$(awk '{ s += $10 } END { print s }' "$T/access.log")
is "$(m proxyd_sent_body_bytes_total "$R")" "$sent" "sent bytes: the access log's sum ($sent)"
heads=$(awk '{ s += $1 } END { print s }' "$T/heads")
is "$(m proxyd_sent_head_bytes_total "$R")" "$heads" "sent head bytes: what the clients got ($heads)"
up="upstream=\"app\\\"q\",peer=\"127.0.0.1:$o1_port\""
is "$(m proxyd_upstream_requests_total "$up")" 7 "upstream requests (quote and backslash escaped): 7"
is "$(m proxyd_upstream_peer_up "$up")" 1 "the peer is up"
is "$(m proxyd_upstream_peer_active "$up")" 0 "no request in flight on it"

# a dead peer: one refused connect, a 502
is "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$dport/")" 502 \
	"a request to a dead peer: 502"
# the cache server: a miss (first the dead peer, then a retry on the live one), a hit
U="http://127.0.0.1:$cport/bytes/50?cc=max-age%3D60"
xc() { # the X-Cache of a GET of U; its head's bytes go to $T/cheads
	curl -s -m 5 -D "$T/ch" -o /dev/null "$U"
	wc -c <"$T/ch" >>"$T/cheads"
	tr -d '\r' <"$T/ch" | sed -n 's/^X-Cache: //p'
}
is "$(xc)" MISS "cache: a miss"
sleep 0.3 # the store commits in its writer thread
is "$(xc)" HIT "cache: then a hit"
wait_idle "$C"
dl="upstream=\"deadup\",peer=\"127.0.0.1:$dead\""
fl="upstream=\"flaky\",peer=\"127.0.0.1:$dead\""
fo="upstream=\"flaky\",peer=\"127.0.0.1:$o1_port\""
is "$(m proxyd_upstream_connect_failures_total "$dl")" 1 "connect failures of the dead peer: 1"
is "$(m proxyd_requests_total "$D,code=\"5xx\"")" 1 "requests 5xx of its server: 1"
is "$(m proxyd_upstream_peer_up "$dl")" 1 "a lone peer is never marked down"
is "$(m proxyd_upstream_requests_total "$fl")/$(m proxyd_upstream_connect_failures_total "$fl")" \
	1/1 "flaky: the dead peer tried once, failed once"
is "$(m proxyd_upstream_peer_up "$fl")" 0 "flaky: the failed peer is down (max_fails 1)"
is "$(m proxyd_upstream_requests_total "$fo")/$(m proxyd_upstream_retries_total "$fo")" 1/1 \
	"flaky: the live peer got the retry"
is "$(m proxyd_cache_requests_total "$C,result=\"miss\"")" 1 "cache results: 1 miss"
is "$(m proxyd_cache_requests_total "$C,result=\"hit\"")" 1 "cache results: 1 hit"
is "$(m proxyd_cache_stores_total "$C")" 1 "cache stores: 1"
is "$(m proxyd_cache_store_failures_total "$C")" 0 "cache store failures: 0"
heads=$(awk '{ s += $1 } END { print s }' "$T/cheads")
is "$(m proxyd_sent_head_bytes_total "$C")" "$heads" "sent head bytes of a miss and a hit ($heads)"
is "$(m proxyd_cache_requests_total "$R,result=\"hit\"")" "" "no cache series for a server without cache"
is "$(m proxyd_cache_up 'cache="main"')" 1 "the cache serves: proxyd_cache_up 1"

# the forward server: a tunnel, an ACL denial, an unknown name
tail='GET /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
printf "CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n$tail" "$o1_port" \
	"$o1_port" | raw 127.0.0.1 "$fport" >"$T/connect.out"
got=$(cat "$T/connect.out")
like "$got" "200 Connection established" "CONNECT answered 200"
fh=$(headlen <"$T/connect.out")
# what the origin sent through the tunnel: all the client got but the tunnel's own head
origin_down=$(($(wc -c <"$T/connect.out") - fh))
code=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{size_header}' -A BadBot \
	-x "127.0.0.1:$fport" "http://127.0.0.1:$o1_port/")
fh=$((fh + ${code#* }))
is "${code% *}" 403 "a denied user agent: 403"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{size_header}' -x "127.0.0.1:$fport" \
	"http://nx.test/")
fh=$((fh + ${code#* }))
is "${code% *}" 502 "an unknown name: 502"
wait_idle "$F" || diag "forward connections still active"
is "$(m proxyd_tunnels_opened_total "$F")" 1 "tunnels opened: 1"
is "$(m proxyd_tunnels_active "$F")" 0 "tunnels active: 0"
tunnel_up=$(printf "$tail" | wc -c)
is "$(m proxyd_tunnel_bytes_total "$F,direction=\"up\"")" "$tunnel_up" "tunnel bytes up: $tunnel_up"
down=$(sed -n 's/.* tunnel=.* down=\([0-9]*\).*/\1/p' "$T/fwd.log")
is "$(m proxyd_tunnel_bytes_total "$F,direction=\"down\"")" "$down" \
	"tunnel bytes down: the access log's ($down)"
is "$down" "$origin_down" "the origin's bytes, without the tunnel's 200 head ($origin_down)"
is "$(m proxyd_acl_denied_total "$F")" 1 "ACL denials: 1"
is "$(m proxyd_sent_head_bytes_total "$F")" "$fh" "sent head bytes: a tunnel's 200 and two errors ($fh)"
is "$(m proxyd_resolve_failures_total "$F")" 1 "resolver failures: 1"
is "$(m proxyd_auth_failures_total "$F")" 0 "auth failures: 0"
is "$(m proxyd_requests_total "$F,code=\"2xx\"")/$(m proxyd_requests_total "$F,code=\"4xx\"")/$(m proxyd_requests_total "$F,code=\"5xx\"")" \
	1/1/1 "forward requests: one 2xx, one 4xx, one 5xx"

# forward connects that fail: refused (a GET, a CONNECT), timed out (a full accept queue)
X="server=\"127.0.0.1:$xport\",mode=\"forward\""
xh=0
code=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{size_header}' -x "127.0.0.1:$xport" \
	"http://127.0.0.1:$dead/")
xh=$((xh + ${code#* }))
is "${code% *}" 502 "forward GET to a dead port: 502"
got=$(printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n' "$dead" "$dead" |
	raw 127.0.0.1 "$xport")
xh=$((xh + $(printf '%s\n' "$got" | headlen)))
is "$(status_of "$got")" 502 "CONNECT to a dead port: 502"
fill_accept_queue "$bh_port"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{size_header}' -x "127.0.0.1:$xport" \
	"http://127.0.0.1:$bh_port/")
xh=$((xh + ${code#* }))
is "${code% *}" 504 "forward GET to an origin that never accepts: 504"
wait_idle "$X" || diag "forward connections still active"
is "$(m proxyd_origin_connect_failures_total "$X,reason=\"refused\"")/$(m proxyd_origin_connect_failures_total "$X,reason=\"timeout\"")/$(m proxyd_origin_connect_failures_total "$X,reason=\"unreachable\"")/$(m proxyd_origin_connect_failures_total "$X,reason=\"other\"")" \
	2/1/0/0 "origin connect failures: 2 refused, 1 timeout"
is "$(m proxyd_origin_connect_failures_total "$F,reason=\"refused\"")" 0 \
	"none for the forward server whose origins answered"
is "$(m proxyd_sent_head_bytes_total "$X")" "$xh" "sent head bytes of the error pages ($xh)"

# a response timeout; TLS: a handshake, and plain text to the TLS port; a 407
is "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$sport/hang")" 504 \
	"a response timeout: 504"
is "$(curl -s -m 5 -k -o /dev/null -w '%{http_code}' "https://127.0.0.1:$tport/bytes/10")" 200 \
	"a GET over TLS"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | raw 127.0.0.1 "$tport" >/dev/null
is "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -x "127.0.0.1:$aport" \
	"http://127.0.0.1:$o1_port/")" 407 "no credentials: 407"
T_="server=\"127.0.0.1:$tport\",mode=\"reverse\""
wait_idle "$T_" || diag "TLS connections still active"
is "$(m proxyd_upstream_timeouts_total "upstream=\"slow\",peer=\"127.0.0.1:$o1_port\"")" 1 \
	"peer timeouts: 1"
is "$(m proxyd_tls_handshakes_total "$T_")/$(m proxyd_tls_handshake_failures_total "$T_")" 1/1 \
	"TLS handshakes: 1 completed, 1 failed"
is "$(m proxyd_auth_failures_total "server=\"127.0.0.1:$aport\",mode=\"forward\"")" 1 \
	"auth failures: 1"

# the exposition format, line by line
awk '
	function fail(why) { print "# line " NR ": " why ": " $0; bad = 1 }
	/^# HELP / { if ($3 in seen) fail("family repeated"); help[$3] = 1; next }
	/^# TYPE / {
		if (!($3 in help)) fail("TYPE before HELP")
		if ($4 != "counter" && $4 != "gauge") fail("bad type")
		if ($3 in seen) fail("family repeated"); seen[$3] = 1; cur = $3; next
	}
	/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? [0-9]+$/ {
		name = $0; sub(/[{ ].*/, "", name)
		if (name != cur) fail("sample outside its family")
		if (substr(name, 1, 7) != "proxyd_") fail("not prefixed proxyd_")
		n++; next
	}
	{ fail("bad line") }
	END { if (n < 50) { print "# only " n " samples"; bad = 1 } exit bad }
' "$T/m.txt"
ok $? "every line is HELP, TYPE or a sample, families in one block each"
if command -v promtool >/dev/null 2>&1; then
	promtool check metrics <"$T/m.txt" >"$T/promtool.out" 2>&1
	ok $? "promtool check metrics accepts it"
else
	pass "promtool check metrics accepts it # SKIP no promtool"
fi
like "$(curl -s -m 5 -D - -o /dev/null "http://127.0.0.1:$admin/metrics" | tr -d '\r')" \
	"Content-Type: text/plain; version=0.0.4" "served as text/plain; version=0.0.4"
is "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/upstreams")" 200 \
	"GET /upstreams still answers"

# reload without the cache server: its series go, the others keep counting
conf 0 >"$T/proxyd.conf"
kill -HUP "$PROXYD_PID"
for _ in $(seq 1 50); do
	scrape >/dev/null
	[ "$(m proxyd_config_generation "")" = 2 ] && break
	sleep 0.1
done
is "$(m proxyd_config_generation "")" 2 "reloaded: generation 2"
is "$(m proxyd_requests_total "$R,code=\"2xx\"")" 5 "a kept server keeps its counts"
is "$(grep -c "$cport" "$T/m.txt")" 0 "a removed server has no series"
conf 1 >"$T/proxyd.conf"
kill -HUP "$PROXYD_PID"
for _ in $(seq 1 50); do
	scrape >/dev/null
	[ "$(m proxyd_config_generation "")" = 3 ] && break
	sleep 0.1
done
is "$(m proxyd_cache_requests_total "$C,result=\"hit\"")" 1 "a server back after a reload resumes its counts"
