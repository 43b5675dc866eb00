#!/usr/bin/env bash
# A client that gives up while its request waits for the upstream ends the upstream
# request too (nginx's 499), instead of holding the upstream connection until
# proxy_read_timeout.
. "$TESTLIB"
plan 4

start_origin o
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream u { server 127.0.0.1:$o_port; }
server {
	listen 127.0.0.1:$port;
	proxy_pass u;
	proxy_read_timeout 60s;
	access_log $T/access.log;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"

base=$(origin_stat "$o_port" active)
curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/hang"
is "$?" 28 "the client gives up after 1 s (curl: operation timed out)"
# the origin's connection for /hang must go away well before proxy_read_timeout
active=""
for _ in $(seq 1 40); do
	active=$(origin_stat "$o_port" active)
	[ "$active" -le "$base" ] && break
	sleep 0.05
done
is "$active" "$base" "the upstream connection is closed when the client leaves"
like "$(cat "$T/access.log")" '"GET /hang HTTP/1.1" 499 ' "the access log records 499"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 200 \
	"proxyd serves on"
