#!/usr/bin/env bash
# Request distribution over weighted servers (1:2:3) at volume: 6,000 requests each for
# balance round_robin, random and least_conn (sequential requests, so least_conn always
# breaks a tie by smooth weighted round robin), with workers 2. Each origin's share must be
# within 3 percentage points of 1/6, 2/6, 3/6. For random, one standard deviation of a share
# at n=6000 is at most 0.65 points, so 3 points is more than 4.6 sigma for every share
# (6.2, 4.9, 4.6 for p = 1/6, 2/6, 3/6): the test does not flake. Round robin is exact.
. "$TESTLIB"
plan 10

N_CALLS=30   # curl invocations per method
PER_CALL=200 # URLs per invocation, sent on one keep-alive connection
TOTAL=$((N_CALLS * PER_CALL))

start_origin w1
start_origin w2
start_origin w3
port_rr=$(free_port_static)
port_rn=$(free_port_static)
port_lc=$(free_port_static)
while [ "$port_rn" = "$port_rr" ]; do port_rn=$(free_port_static); done
while [ "$port_lc" = "$port_rr" ] || [ "$port_lc" = "$port_rn" ]; do port_lc=$(free_port_static); done
servers="server 127.0.0.1:$w1_port weight=1;
	server 127.0.0.1:$w2_port weight=2;
	server 127.0.0.1:$w3_port weight=3;
	keepalive 8;"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream rr { balance round_robin; $servers }
upstream rn { balance random; $servers }
upstream lc { balance least_conn; $servers }
server { listen 127.0.0.1:$port_rr; proxy_pass rr; }
server { listen 127.0.0.1:$port_rn; proxy_pass rn; }
server { listen 127.0.0.1:$port_lc; proxy_pass lc; }
CONF
start_proxyd "$T/proxyd.conf" "$port_rr"
for p in $port_rn $port_lc; do
	wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"
done

# share_ok COUNT WANT_SIXTHS: COUNT/TOTAL within 3 points of WANT_SIXTHS/6, in integers:
# |COUNT*600 - WANT*100*TOTAL| <= 3*6*TOTAL
share_ok() {
	local d=$(($1 * 600 - $2 * 100 * TOTAL))
	[ "${d#-}" -le $((18 * TOTAL)) ]
}

# run NAME PORT: sends TOTAL requests, then checks count and shares
run() {
	local name=$1 port=$2 urls="" i c1 c2 c3
	for i in $(seq 1 "$PER_CALL"); do urls="$urls http://127.0.0.1:$port/"; done
	for i in $(seq 1 "$N_CALLS"); do
		curl -s -m 30 $urls
	done >"$T/$name.out"
	c1=$(grep -c "^$w1_uuid\$" "$T/$name.out")
	c2=$(grep -c "^$w2_uuid\$" "$T/$name.out")
	c3=$(grep -c "^$w3_uuid\$" "$T/$name.out")
	diag "$name: weights 1:2:3 got $c1:$c2:$c3 of $TOTAL"
	is "$((c1 + c2 + c3)):$(wc -l <"$T/$name.out" | tr -d ' ')" "$TOTAL:$TOTAL" \
		"$name: all $TOTAL requests answered by the three origins"
	share_ok "$c1" 1 && share_ok "$c2" 2 && share_ok "$c3" 3
	ok $? "$name: shares $c1:$c2:$c3 within 3 points of 1/6, 2/6, 3/6"
	RUN_COUNTS="$c1:$c2:$c3"
}

run round_robin "$port_rr"
is "$RUN_COUNTS" "$((TOTAL / 6)):$((TOTAL * 2 / 6)):$((TOTAL * 3 / 6))" \
	"round_robin: smooth WRR is exact"
run random "$port_rn"
# random must not degenerate into round robin: an exact 1000:2000:3000 has probability
# of about 1e-4 under a fair random choice, so is only reported, not failed.
[ "$RUN_COUNTS" = "$((TOTAL / 6)):$((TOTAL * 2 / 6)):$((TOTAL * 3 / 6))" ] &&
	diag "random gave the exact round-robin split (rare but possible)"
c1=${RUN_COUNTS%%:*}
ok "$([ "$c1" -gt 0 ] && echo 0 || echo 1)" "random: the weight-1 server gets requests"
run least_conn "$port_lc"

# the origins count what they served: the sum must be the three runs (plus /stats calls)
s1=$(origin_stat "$w1_port" requests)
s2=$(origin_stat "$w2_port" requests)
s3=$(origin_stat "$w3_port" requests)
is "$((s1 + s2 + s3 - 3))" "$((3 * TOTAL))" "the origins served $((3 * TOTAL)) requests in all"
like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
