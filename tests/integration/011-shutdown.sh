#!/usr/bin/env bash
# Graceful shutdown: on SIGTERM proxyd closes idle keep-alive connections at once, lets
# requests in flight finish and then exits 0; shutdown_timeout cuts requests that take
# longer.
. "$TESTLIB"
plan 12

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# wait_origin_requests PORT MARK N: poll the origin's /stats until it has seen N more
# requests than MARK (an earlier "requests" value), not counting the polls themselves.
# Returns 1 after ~5s.
wait_origin_requests() {
	local n=0 r
	for _ in $(seq 1 100); do
		r=$(origin_stat "$1" requests)
		n=$((n + 1))
		[ "$((r - n - $2))" -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

start_origin o

# --- a request in flight completes, idle keep-alive connections close ------------------------
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass o; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

# an idle keep-alive client: one request answered, then nothing
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' >&5
r=$(read_response 5 3 | tr -d '\r')
like "$r" '^HTTP/1.1 200 ' "an idle keep-alive client was served"

# a request that takes 1.5s at the origin
mark=$(origin_stat "$o_port" requests)
curl -s -m 20 -o "$T/slow.body" -w '%{http_code}' "http://127.0.0.1:$port/?delay=1500" >"$T/slow.code" &
slow=$!
PIDS="$PIDS $slow"
wait_origin_requests "$o_port" "$mark" 1 || diag "the slow request did not reach the origin in time"

# the idle client's EOF, timed, in the background (it only reads fd 5)
( timeout 5 cat <&5 >/dev/null; echo "$? $(now_ms)" >"$T/idle.res" ) &
idle=$!
PIDS="$PIDS $idle"
exec 5<&-

t0=$(now_ms)
stop_proxyd >"$T/stop.rc"
el=$(($(now_ms) - t0))
wait "$slow"
wait "$idle"

is "$(cat "$T/slow.code")" 200 "the request in flight at SIGTERM completes with 200"
is "$(cat "$T/slow.body")" "$o_uuid" "... with its whole body"
is "$(cat "$T/stop.rc")" 0 "proxyd exits 0 after the request in flight"
diag "proxyd exited $el ms after SIGTERM"
ok $((el >= 500 && el < 5000 ? 0 : 1)) "proxyd waited for the request, but not for the 10s shutdown_timeout ($el ms)"
read -r idle_rc idle_t <"$T/idle.res"
is "$idle_rc" 0 "the idle keep-alive connection is closed"
ok $((idle_t - t0 < 1000 ? 0 : 1)) "... at once, not after the request in flight ($((idle_t - t0)) ms)"

# --- shutdown_timeout cuts a request that hangs ---------------------------------------------------
port=$(free_port_static)
cat >"$T/proxyd2.conf" <<CONF
workers 2;
error_log stderr info;
shutdown_timeout 1s;
upstream o { server 127.0.0.1:$o_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass o; }
CONF
start_proxyd "$T/proxyd2.conf" "$port"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 200 "second proxyd serves"

mark=$(origin_stat "$o_port" requests)
curl -s -m 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/hang" >"$T/hang.code" &
hang=$!
PIDS="$PIDS $hang"
wait_origin_requests "$o_port" "$mark" 1 || diag "the /hang request did not reach the origin in time"

t0=$(now_ms)
kill -TERM "$PROXYD_PID"
# a new client during the drain is not served (refused or closed)
sleep 0.1
out=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null)
isnt200=$([ "$out" != 200 ] && echo 0 || echo 1)
ok "$isnt200" "a new connection during the shutdown is not served (got '$out')"
stop_proxyd >"$T/stop.rc"
el=$(($(now_ms) - t0))
wait "$hang"
is "$(cat "$T/stop.rc")" 0 "shutdown_timeout 1s with /hang in flight: proxyd exits 0"
diag "proxyd exited $el ms after SIGTERM"
ok $((el >= 800 && el <= 3000 ? 0 : 1)) "... within about 3s, after the 1s grace period ($el ms)"
isnt200=$([ "$(cat "$T/hang.code")" != 200 ] && echo 0 || echo 1)
ok "$isnt200" "the hanging request was cut (got '$(cat "$T/hang.code")')"
