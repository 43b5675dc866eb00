#!/usr/bin/env bash
# IPv6: proxyd listening on [::1]:PORT in front of an origin on ::1 serves
# curl -g 'http://[::1]:PORT/'. Skipped where ::1 cannot be used.
. "$TESTLIB"

# Is ::1 usable? Start the origin on it by hand (start_origin bails on failure).
"$ORIGIN" -a ::1 -p 0 >"$T/origin6.out" 2>"$T/origin6.err" &
o6_pid=$!
PIDS="$PIDS $o6_pid"
for _ in $(seq 1 100); do
	grep -q '^READY ' "$T/origin6.out" 2>/dev/null && break
	kill -0 "$o6_pid" 2>/dev/null || break
	sleep 0.05
done
line=$(grep '^READY ' "$T/origin6.out") || skip_all "::1 is not usable here: $(head -c 200 "$T/origin6.err")"
o6_port=$(printf '%s' "$line" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
o6_uuid=$(printf '%s' "$line" | sed -n 's/.*uuid=\([^ ]*\).*/\1/p')
port_open ::1 "$o6_port" || skip_all "cannot connect to [::1]:$o6_port"

plan 5

# a port free on both families (free_port_static checks 127.0.0.1 only)
for _ in $(seq 1 50); do
	port=$(free_port_static)
	port_open ::1 "$port" || break
done
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream six { server [::1]:$o6_port; }
server { listen [::1]:$port; proxy_pass six; }
CONF
# start_proxyd waits on 127.0.0.1; this one listens on ::1 only
"$PROXYD" -f -c "$T/proxyd.conf" >>"$T/proxyd.out" 2>>"$T/proxyd.log" &
PROXYD_PID=$!
PIDS="$PIDS $PROXYD_PID"
if ! wait_port ::1 "$port"; then
	sed 's/^/# /' "$T/proxyd.log"
	bail "proxyd did not start on [::1]:$port"
fi

is "$(curl -s -g --max-time 5 "http://[::1]:$port/")" "$o6_uuid" "curl -g http://[::1]:$port/ is answered by the origin on ::1"
h=$(curl -s -g --max-time 5 "http://[::1]:$port/headers")
is "$(grep -i '^X-Forwarded-For:' <<<"$h")" "X-Forwarded-For: ::1" "X-Forwarded-For carries the IPv6 client address"
is "$(grep -i '^Host:' <<<"$h")" "Host: [::1]:$port" "Host [::1]:PORT is passed through"
body=$(curl -s -g --max-time 5 --data-binary 'hello over six' "http://[::1]:$port/echo")
like "$body" 'body-length: 14' "a POST body crosses IPv6 on both sides"
port_open 127.0.0.1 "$port"
ok $((! $?)) "proxyd does not listen on 127.0.0.1:$port (only [::1])"
