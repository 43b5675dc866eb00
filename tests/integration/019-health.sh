#!/usr/bin/env bash
# Active health checks (#3): with no client traffic, a killed origin is marked down by the
# checks of worker 0 and gets no request (not even one tried and retried); brought back on
# its port it is marked up and serves again. A check uri answering 500 keeps an origin
# down although plain requests to it succeed. A reload replaces the checkers.
. "$TESTLIB"
plan 14

start_origin a
start_origin b
start_origin c
port_hc=$(free_port_static)
port_bad=$(free_port_static)
while [ "$port_bad" = "$port_hc" ]; do port_bad=$(free_port_static); done
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream hc {
	server 127.0.0.1:$a_port;
	server 127.0.0.1:$b_port;
	health_check interval=200ms timeout=500ms uri=/status/200 fails=2 passes=2;
}
upstream bad {
	server 127.0.0.1:$c_port;
	health_check interval=200ms timeout=500ms uri=/status/500 fails=1 passes=1;
}
server { listen 127.0.0.1:$port_hc; proxy_pass hc; }
server { listen 127.0.0.1:$port_bad; proxy_pass bad; }
CONF
start_proxyd "$T/proxyd.conf" "$port_hc"
wait_port 127.0.0.1 "$port_bad" || bail "proxyd does not listen on $port_bad"

# wait_log REGEX [TRIES of 0.05s]: poll proxyd's error log for a line.
wait_log() {
	local n=${2:-80}
	while [ "$n" -gt 0 ]; do
		grep -Eq -- "$1" "$T/proxyd.log" && return 0
		sleep 0.05
		n=$((n - 1))
	done
	return 1
}

# --- both origins serve while healthy ---------------------------------------------------
for i in 1 2 3 4; do
	curl -s -m 5 "http://127.0.0.1:$port_hc/"
done >"$T/before.out"
is "$(sort -u "$T/before.out" | tr '\n' ' ')" "$(printf '%s\n%s\n' "$a_uuid" "$b_uuid" | sort |
	tr '\n' ' ')" "both origins serve while healthy"

# --- a killed origin is marked down with no client traffic -----------------------------
kill "$b_pid"
wait "$b_pid" 2>/dev/null
t0=$(date +%s%N)
wait_log "peer 127.0.0.1:$b_port is down \\(health check: " 60
ok $? "killed origin marked down by health checks within 3 s"
diag "marked down after $((($(date +%s%N) - t0) / 1000000)) ms"
is "$(grep -c "peer 127.0.0.1:$b_port is down (health check" "$T/proxyd.log")" 1 \
	"the down transition is logged once"
for i in $(seq 1 20); do
	curl -s -m 5 -w '%{http_code}\n' "http://127.0.0.1:$port_hc/"
done >"$T/down.out"
is "$(grep -c "^200\$" "$T/down.out")" 20 "20 requests answered 200 while the origin is down"
is "$(grep -v "^200\$" "$T/down.out" | sort | uniq -c | tr -s ' ')" " 20 $a_uuid" \
	"all 20 reach the healthy origin"
is "$(grep -c "connect() to 127.0.0.1:$b_port failed" "$T/proxyd.log")" 0 \
	"no request was tried on the down origin"

# --- brought back on its port, it is marked up and serves again ------------------------
"$ORIGIN" -p "$b_port" -u "$b_uuid" >"$T/origin-b2.out" 2>"$T/origin-b2.err" &
PIDS="$PIDS $!"
wait_port 127.0.0.1 "$b_port" || bail "origin b did not restart"
wait_log "peer 127.0.0.1:$b_port is up \\(health check\\)" 60
ok $? "restarted origin marked up by health checks"
for i in $(seq 1 10); do
	curl -s -m 5 "http://127.0.0.1:$port_hc/"
done >"$T/up.out"
is "$(grep -c "^$b_uuid\$" "$T/up.out")" 5 "the restarted origin gets its share again"
is "$(grep -c "^$a_uuid\$" "$T/up.out")" 5 "and so does the other"

# --- a check uri answering 500 keeps a healthy-looking origin down ---------------------
wait_log "peer 127.0.0.1:$c_port is down \\(health check: status 500\\)" 60
ok $? "check answering 500 marks the origin down"
is "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$c_port/")" 200 \
	"the origin itself answers plain requests"
is "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$port_bad/")" 503 \
	"proxyd does not send it requests: 503"

# --- a reload replaces the checkers: the new generation starts up and is checked anew ----
kill -HUP "$PROXYD_PID"
n=60
while [ "$n" -gt 0 ] &&
	[ "$(grep -c "peer 127.0.0.1:$c_port is down (health check: status 500)" "$T/proxyd.log")" -lt 2 ]; do
	sleep 0.05
	n=$((n - 1))
done
is "$(grep -c "peer 127.0.0.1:$c_port is down (health check: status 500)" "$T/proxyd.log")" 2 \
	"after a reload the new generation's checks mark the origin down again"

stop_proxyd >"$T/stop.rc"
is "$(cat "$T/stop.rc")" 0 "proxyd stops cleanly with checks running"
