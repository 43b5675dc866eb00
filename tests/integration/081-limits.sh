#!/usr/bin/env bash
# limit_req and limit_conn on a fixed clock (PROXYD_TEST_NOW, builds configured with
# --enable-test-hooks; other builds skip), so that no bucket refills between requests:
# rate=5r/s burst=2 lets exactly 3 of 10 requests through and answers the other 7 with
# 429 and Retry-After; another client address (curl --interface 127.0.0.2) has its own
# bucket; the access log shows limit=ZONE and the error log names zone and client once;
# limit_conn 2 refuses the third of three slow requests in progress and frees the slots
# when they end; a CONNECT tunnel holds a slot for its life; a forward server counts the
# requests it refuses before authentication or its access list (origin-form 400s here) by
# the client address in every zone: a key=client bucket empties and the next request gets
# 429, a key=host bucket is not spent by them; GET /metrics counts what passed and what
# was refused per zone, its keys and the slots held; a reload that keeps a zone's
# definition keeps its state, one that changes it starts afresh.
. "$TESTLIB"

start_origin o
p_req=$(free_port_static)
p_conn=$(free_port_static)
p_fwd=$(free_port_static)
p_ctl=$(free_port_static)
p_auth=$(free_port_static)
p_fc=$(free_port_static)
p_fh=$(free_port_static)
p_adm=$(free_port_static)
hash=$(openssl passwd -6 'c0rrect horse') || bail "openssl passwd failed"
printf 'kim:%s\n' "$hash" >"$T/users"

# mkconf GEN RATE: writes $T/proxyd.conf at once (rename), so a reload never reads half
mkconf() {
	cat >"$T/proxyd.conf.new" <<CONF
workers 1;
error_log stderr info;
limit_req_zone rz key=client rate=$2 size=100;
limit_conn_zone cz key=client size=100;
limit_conn_zone tz key=client;
limit_req_zone uz key=user rate=1r/m;
limit_req_zone fc key=client rate=1r/m;
limit_req_zone fh key=host rate=1r/m;
upstream o { server 127.0.0.1:$o_port; }
server { listen 127.0.0.1:$p_req; proxy_pass o; limit_req rz burst=2 nodelay;
	access_log $T/access.log; }
server { listen 127.0.0.1:$p_conn; proxy_pass o; limit_conn cz 2; }
server { listen 127.0.0.1:$p_fwd; mode forward; connect_ports 1-65535; limit_conn tz 1; }
server { listen 127.0.0.1:$p_auth; mode forward; limit_req uz;
	auth basic realm="t" file $T/users; }
server { listen 127.0.0.1:$p_fc; mode forward; limit_req fc burst=2; }
server { listen 127.0.0.1:$p_fh; mode forward; limit_req fh burst=2; }
admin { listen 127.0.0.1:$p_adm; }
# control and generation marker: serves only on 2001-09-09, which the real clock is not
server { listen 127.0.0.1:$p_ctl; proxy_pass o; add_header X-Gen $1 always;
	allow date 2001-09-09 UTC; deny all; }
CONF
	mv "$T/proxyd.conf.new" "$T/proxyd.conf"
}
mkconf 1 5r/s
PROXYD_TEST_NOW=1000000000 start_proxyd "$T/proxyd.conf" "$p_req"
for p in $p_conn $p_fwd $p_ctl $p_auth $p_fc $p_fh $p_adm; do
	wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"
done
if [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$p_ctl/")" != 200 ]; then
	skip_all "PROXYD_TEST_NOW is not honoured (proxyd built without --enable-test-hooks)"
fi
plan 47

# burst IFACE N: N requests one after the other from IFACE; prints the statuses
burst() {
	local i
	for i in $(seq 1 "$2"); do
		curl -s -o /dev/null -w '%{http_code} ' -m 5 --interface "$1" \
			"http://127.0.0.1:$p_req/"
	done
}
count() { printf '%s' "$1" | tr ' ' '\n' | grep -c "^$2\$"; }

got=$(burst 127.0.0.1 10)
is "$(count "$got" 200) $(count "$got" 429)" "3 7" "5r/s burst=2: 10 requests at once, 3 served, 7 refused ($got)"
is "$(printf '%s' "$got" | cut -d' ' -f1-4)" "200 200 200 429" "the first three pass, the fourth is refused"
h=$(curl -s -i -m 5 "http://127.0.0.1:$p_req/" | tr -d '\r')
like "$h" "^HTTP/1.1 429 " "the next one is refused too"
like "$h" $'\nRetry-After: 1\n' "with Retry-After: 1 (the next token is 200 ms away)"
like "$h" $'\nProxy-Status: proxyd; error=http_request_denied; details="limit_req"' \
	"Proxy-Status names the limit"
like "$h" "request rate limit exceeded" "the page says why"
like "$h" $'\nConnection: close' "and the connection closes"
got=$(burst 127.0.0.2 4)
is "$got" "200 200 200 429 " "127.0.0.2 has a bucket of its own"
like "$(grep ' 429 ' "$T/access.log" | head -1)" '^127\.0\.0\.1 - - .*"GET / HTTP/1.1" 429 [0-9]+ .* limit=rz$' \
	"the access log shows the refusal and its zone"
is "$(grep -c ' 200 .*limit=' "$T/access.log")" 0 "served requests carry no limit= field"
is "$(grep -c 'limiting requests by zone "rz" (client 127.0.0.1,' "$T/proxyd.log")" 1 \
	"the error log names zone and client, once for eight refusals"
like "$(cat "$T/proxyd.log")" 'limiting requests by zone "rz" \(client 127.0.0.2, burst=2\): 429, retry after 1s' \
	"and the other client once"

# GET /metrics: the zone's counts so far (rz: 3 + 3 passed, 7 + 1 + 1 refused)
scrape() { curl -s -m 5 -o "$T/m.txt" "http://127.0.0.1:$p_adm/metrics"; }
m() { # m NAME LABELS: the value of one sample of the last scrape ("" when absent)
	K="$1{$2}" awk 'index($0, ENVIRON["K"] " ") == 1 { print substr($0, length(ENVIRON["K"]) + 2) }' \
		"$T/m.txt"
}
RZ='zone="rz",kind="req"'
CZ='zone="cz",kind="conn"'
scrape
is "$(m proxyd_limit_passed_total "$RZ")/$(m proxyd_limit_refused_total "$RZ")" 6/9 \
	"metrics: rz passed 6, refused 9"
is "$(m proxyd_limit_zone_keys "$RZ")/$(m proxyd_limit_zone_size "$RZ")" 2/100 \
	"metrics: rz holds 2 keys of 100"
is "$(m proxyd_limit_zone_full_total "$RZ")" 0 "metrics: rz was never full"
is "$(m proxyd_limit_passed_total "$CZ")/$(m proxyd_limit_refused_total "$CZ")/$(m proxyd_limit_conn_active "$CZ")" \
	0/0/0 "metrics: cz has counted nothing yet"
is "$(m proxyd_limit_conn_active "$RZ")" "" "metrics: no held count for a rate zone"

# limit_conn 2: two slow requests in progress, the third is refused
slow() { curl -s -o /dev/null -w '%{http_code}' -m 20 "http://127.0.0.1:$p_conn/?delay=$1"; }
slow 6000 >"$T/slow1" &
s1=$!
slow 6000 >"$T/slow2" &
s2=$!
# the origin's active connections: the two slow ones and the /stats request itself
for _ in $(seq 1 100); do
	[ "$(origin_stat "$o_port" active)" = 3 ] && break
	sleep 0.05
done
is "$(origin_stat "$o_port" active)" 3 "two slow requests are in progress"
third=$(curl -s -i -m 5 "http://127.0.0.1:$p_conn/" | tr -d '\r')
like "$third" "^HTTP/1.1 429 " "limit_conn 2: a third request at the same time gets 429"
like "$third" 'details="limit_conn"' "Proxy-Status names limit_conn"
scrape
is "$(m proxyd_limit_conn_active "$CZ")/$(m proxyd_limit_zone_keys "$CZ")" 2/1 \
	"metrics: cz holds 2 requests of 1 key in progress"
is "$(curl -s -o /dev/null -w '%{http_code}' -m 5 --interface 127.0.0.2 "http://127.0.0.1:$p_conn/")" 200 \
	"another client address counts on its own"
wait "$s1" "$s2"
is "$(cat "$T/slow1") $(cat "$T/slow2")" "200 200" "the two slow requests were served"
is "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$p_conn/")" 200 \
	"their slots are free once they are done"
for _ in $(seq 1 50); do # released as each response ends, just after the client has it
	scrape
	[ "$(m proxyd_limit_conn_active "$CZ")" = 0 ] && break
	sleep 0.1
done
is "$(m proxyd_limit_passed_total "$CZ")/$(m proxyd_limit_refused_total "$CZ")/$(m proxyd_limit_conn_active "$CZ")/$(m proxyd_limit_zone_keys "$CZ")" \
	4/1/0/0 "metrics: cz passed 4, refused 1, holds nothing once all are done"

# a CONNECT tunnel holds its slot (limit_conn tz 1) until it closes
exec 5<>"/dev/tcp/127.0.0.1/$p_fwd"
printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n' "$o_port" "$o_port" >&5
IFS= read -r -t 5 -u 5 line
like "$line" "^HTTP/1.1 200 " "a CONNECT tunnel opens"
is "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -x "http://127.0.0.1:$p_fwd" "http://127.0.0.1:$o_port/")" 429 \
	"limit_conn 1: a request beside the open tunnel gets 429"
exec 5<&-
code=
for _ in $(seq 1 50); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -x "http://127.0.0.1:$p_fwd" "http://127.0.0.1:$o_port/")
	[ "$code" = 200 ] && break
	sleep 0.1
done
is "$code" 200 "once the tunnel is closed its slot is free"

# key=user: one bucket per user whatever the address; without credentials, the address
fwd() { # fwd IFACE [USER:PASSWORD]
	curl -s -o /dev/null -w '%{http_code}' -m 5 --interface "$1" ${2:+-U "$2"} \
		-x "http://127.0.0.1:$p_auth" "http://127.0.0.1:$o_port/"
}
is "$(fwd 127.0.0.1 'kim:c0rrect horse') $(fwd 127.0.0.1 'kim:c0rrect horse')" "200 429" \
	"key=user, 1r/m: kim's second request is refused"
is "$(fwd 127.0.0.2 'kim:c0rrect horse')" 429 "from another address too (the key is the user)"
is "$(fwd 127.0.0.1)" 407 "a request without credentials counts against its address"
is "$(fwd 127.0.0.1) $(fwd 127.0.0.1 'kim:wrong')" "429 429" \
	"so do failed attempts: the address's bucket is empty"

# forward servers: origin-form requests (400) go through the limits first, by the client
# address in every zone; key=client, 1r/m burst=2: three 400s, then 429
ofm() { # ofm PORT IFACE: an origin-form request for the origin; prints the status
	curl -s -o /dev/null -w '%{http_code}' -m 5 --interface "$2" \
		"http://127.0.0.1:$1/" -H "Host: 127.0.0.1:$o_port"
}
abs() { # abs PORT IFACE: an absolute-form request for the origin
	curl -s -o /dev/null -w '%{http_code}' -m 5 --interface "$2" -x "http://127.0.0.1:$1" \
		"http://127.0.0.1:$o_port/"
}
got=$(for _ in 1 2 3 4 5; do printf '%s ' "$(ofm "$p_fc" 127.0.0.1)"; done)
is "$got" "400 400 400 429 429 " "key=client: origin-form requests are limited (400 x3, then 429)"
is "$(abs "$p_fc" 127.0.0.1)" 429 "they spent the address's bucket: a good request from it gets 429"
is "$(abs "$p_fc" 127.0.0.2)" 200 "another address is served"
like "$(grep 'zone "fc"' "$T/proxyd.log" | head -1)" 'limiting requests by zone "fc" \(client 127\.0\.0\.1, burst=2\)' \
	"the error log names the zone and the client"
got=$(for _ in 1 2 3 4; do printf '%s ' "$(ofm "$p_fh" 127.0.0.1)"; done)
is "$got" "400 400 400 429 " "key=host: origin-form requests are limited by their address"
is "$(abs "$p_fh" 127.0.0.1)" 200 "and do not spend the bucket of the host they name"
is "$(abs "$p_fh" 127.0.0.2)$(abs "$p_fh" 127.0.0.2)$(abs "$p_fh" 127.0.0.2)" 200200429 \
	"the host's bucket (burst=2) serves 3 requests in all, from any address"
like "$(grep 'zone "fh"' "$T/proxyd.log" | head -1)" 'limiting requests by zone "fh" \(client 127\.0\.0\.1, burst=2\)' \
	"a refusal before the host is trusted names the client, not the host"
scrape
FC='zone="fc",kind="req"'
FH='zone="fh",kind="req"'
is "$(m proxyd_limit_passed_total "$FC")/$(m proxyd_limit_refused_total "$FC")/$(m proxyd_limit_zone_keys "$FC")" \
	4/3/2 "metrics: fc passed 4 (3 refused later with 400), refused 3, 2 keys"
is "$(m proxyd_limit_passed_total "$FH")/$(m proxyd_limit_refused_total "$FH")/$(m proxyd_limit_zone_keys "$FH")" \
	6/2/2 "metrics: fh passed 6, refused 2, 2 keys (an address, a host)"
fwd400=$(m proxyd_requests_total 'server="127.0.0.1:'"$p_fc"'",mode="forward",code="4xx"')
is "$fwd400" 6 "the 400s and 429s are requests answered 4xx (5 origin-form, 1 absolute)"

# reloads: wait_gen N waits until new connections see generation N
wait_gen() {
	for _ in $(seq 1 100); do
		curl -s -i -m 5 "http://127.0.0.1:$p_ctl/" | tr -d '\r' | grep -qx "X-Gen: $1" && return 0
		sleep 0.05
	done
	return 1
}
mkconf 2 5r/s
kill -HUP "$PROXYD_PID"
wait_gen 2 || diag "generation 2 not seen"
is "$(burst 127.0.0.1 1)" "429 " "a reload with the same zone keeps its state: still refused"
scrape
is "$(m proxyd_limit_refused_total "$RZ")/$(m proxyd_limit_zone_keys "$RZ")" 10/2 \
	"metrics: the kept zone's counters and keys go on"
mkconf 3 6r/s
kill -HUP "$PROXYD_PID"
wait_gen 3 || diag "generation 3 not seen"
is "$(burst 127.0.0.1 4)" "200 200 200 429 " "a reload that changes the zone starts it afresh"
scrape
is "$(m proxyd_limit_passed_total "$RZ")/$(m proxyd_limit_refused_total "$RZ")/$(m proxyd_limit_zone_keys "$RZ")" \
	9/11/1 "metrics: a changed zone keeps its counters (same name), its keys start afresh"
