#!/usr/bin/env bash
# least_conn and least_time under concurrent traffic avoid a slow origin (#3): three origins,
# one of them answering every request 150ms late (origin -D 150). 600 GETs from 8 concurrent
# clients (60 curl runs of 10 keep-alive requests, 8 at a time) per upstream. round_robin is
# the control: it must give the slow origin its third (it cannot tell), so the assertion
# on the others (less than half of a third) tells a balancer that sees the slowness from one
# that does not. The counts are shares of requests, never times.
. "$TESTLIB"
plan 11

CLIENTS=8
RUNS=60    # curl invocations per upstream
PER_RUN=10 # requests per invocation, on one keep-alive connection
TOTAL=$((RUNS * PER_RUN))

start_origin f1
start_origin f2
start_origin sl -D 150
servers="server 127.0.0.1:$f1_port; server 127.0.0.1:$f2_port; server 127.0.0.1:$sl_port;"
p_rr=$(free_port_static)
p_lc=$(free_port_static)
p_lt=$(free_port_static)
p_lb=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream rr { balance round_robin; $servers keepalive 16; }
upstream lc { balance least_conn; $servers keepalive 16; }
upstream lt { balance least_time header; $servers keepalive 16; }
upstream lb { balance least_time last_byte; $servers keepalive 16; }
server { listen 127.0.0.1:$p_rr; proxy_pass rr; }
server { listen 127.0.0.1:$p_lc; proxy_pass lc; }
server { listen 127.0.0.1:$p_lt; proxy_pass lt; }
server { listen 127.0.0.1:$p_lb; proxy_pass lb; }
CONF
start_proxyd "$T/proxyd.conf" "$p_rr"
for p in $p_lc $p_lt $p_lb; do
	wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"
done

# the slow origin really is slow, and only it
t0=$(date +%s%N)
curl -s -o /dev/null "http://127.0.0.1:$sl_port/"
t1=$(date +%s%N)
curl -s -o /dev/null "http://127.0.0.1:$f1_port/"
t2=$(date +%s%N)
ok "$([ $(((t1 - t0) / 1000000)) -ge 150 ] && echo 0 || echo 1)" \
	"origin -D 150 answers no sooner than 150ms ($(((t1 - t0) / 1000000))ms; a fast one $(((t2 - t1) / 1000000))ms)"

# load NAME PORT: TOTAL GETs from CLIENTS concurrent clients; sets SLOW, FAST (answers of
# the slow origin and of the two fast ones) and ALL (lines answered)
load() {
	local name=$1 port=$2 urls="" i
	for i in $(seq 1 "$PER_RUN"); do urls="$urls http://127.0.0.1:$port/"; done
	mkdir -p "$T/$name"
	# each run writes its own file, so answers of concurrent runs cannot interleave
	seq 1 "$RUNS" | timeout 120 xargs -P "$CLIENTS" -I{} \
		sh -c "curl -s -m 30 $urls >'$T/$name/{}.out'"
	cat "$T/$name"/*.out >"$T/$name.out"
	SLOW=$(grep -c "^$sl_uuid\$" "$T/$name.out")
	FAST=$(grep -c -E "^($f1_uuid|$f2_uuid)\$" "$T/$name.out")
	ALL=$(wc -l <"$T/$name.out" | tr -d ' ')
	diag "$name: slow origin $SLOW, fast origins $FAST of $TOTAL"
}

fair=$((TOTAL / 3))

load round_robin "$p_rr"
is "$((SLOW + FAST)):$ALL" "$TOTAL:$TOTAL" "round_robin: all $TOTAL requests answered by the origins"
# smooth WRR is exact over the sequence of picks; allow for nothing but rounding
ok "$([ "$SLOW" -ge $((fair - 2)) ] && [ "$SLOW" -le $((fair + 2)) ] && echo 0 || echo 1)" \
	"round_robin (control): the slow origin gets its third ($SLOW of $TOTAL)"

load least_conn "$p_lc"
is "$((SLOW + FAST)):$ALL" "$TOTAL:$TOTAL" "least_conn: all $TOTAL requests answered by the origins"
ok "$([ "$SLOW" -lt $((fair / 2)) ] && echo 0 || echo 1)" \
	"least_conn: the slow origin gets less than half its fair share ($SLOW < $((fair / 2)))"

load least_time "$p_lt"
is "$((SLOW + FAST)):$ALL" "$TOTAL:$TOTAL" "least_time header: all $TOTAL requests answered by the origins"
ok "$([ "$SLOW" -lt $((fair / 2)) ] && echo 0 || echo 1)" \
	"least_time header: the slow origin gets less than half its fair share ($SLOW < $((fair / 2)))"

load least_time_last_byte "$p_lb"
is "$((SLOW + FAST)):$ALL" "$TOTAL:$TOTAL" "least_time last_byte: all $TOTAL requests answered by the origins"
ok "$([ "$SLOW" -lt $((fair / 2)) ] && echo 0 || echo 1)" \
	"least_time last_byte: the slow origin gets less than half its fair share ($SLOW < $((fair / 2)))"

# the origins' own counts agree with the answers: 4 runs, the probe, and the /stats calls
s=$(origin_stat "$sl_port" requests)
f=$(($(origin_stat "$f1_port" requests) + $(origin_stat "$f2_port" requests)))
is "$((s + f - 3 - 2))" "$((4 * TOTAL))" "the origins served $((4 * TOTAL)) proxied requests in all"
like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
