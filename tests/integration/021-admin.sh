#!/usr/bin/env bash
# The admin endpoint (#3): GET /upstreams on the admin listener is JSON with every peer's
# configuration and runtime state (requests counted, a failed peer "failed", a `down` peer
# "down":true); other paths answer 404, other methods 405; a non-loopback admin listen is
# refused by `proxyd -t` with file:line.
. "$TESTLIB"
plan 18

start_origin a
start_origin b
dead=$(dead_port)
dead2=$(dead_port)
while [ "$dead2" = "$dead" ]; do dead2=$(dead_port); done
port=$(free_port)
port_d=$(free_port)
while [ "$port_d" = "$port" ]; do port_d=$(free_port); done
admin=$(free_port)
while [ "$admin" = "$port" ] || [ "$admin" = "$port_d" ]; do admin=$(free_port); done
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream u {
	server 127.0.0.1:$a_port;
	server 127.0.0.1:$dead max_fails=1 fail_timeout=30s;
}
upstream d {
	server 127.0.0.1:$b_port;
	server 127.0.0.1:$dead2 down;
}
server { listen 127.0.0.1:$port; proxy_pass u; }
server { listen 127.0.0.1:$port_d; proxy_pass d; }
admin {
	listen 127.0.0.1:$admin;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
wait_port 127.0.0.1 "$admin" || bail "proxyd does not listen on the admin port $admin"

# peer JSON: the object of one peer in $T/up.json
peer() { grep -o "{\"server\":\"127.0.0.1:$1\"[^}]*}" "$T/up.json"; }

code=$(curl -s -m 5 -o "$T/up.json" -D "$T/up.head" -w '%{http_code}' \
	"http://127.0.0.1:$admin/upstreams")
is "$code" 200 "GET /upstreams answers 200"
like "$(tr -d '\r' <"$T/up.head")" "Content-Type: application/json" "as application/json"
like "$(tr -d '\r' <"$T/up.head")" "Connection: close" "with Connection: close"
like "$(cat "$T/up.json")" '^\{"generation":[0-9]+,"upstreams":\[\{"name":"u","balance":"round_robin","peers":\[' \
	"the document starts with the generation and upstream u"
like "$(cat "$T/up.json")" "\"name\":\"d\"" "upstream d is listed"
like "$(peer "$a_port")" '"state":"up".*"requests":0,' "a fresh peer is up with no requests"
like "$(peer "$dead2")" '"state":"down","backup":false,"down":true' "a down peer shows down:true"
if command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$T/up.json" >/dev/null
	ok $? "the document is valid JSON (python3)"
else
	pass "the document is valid JSON # SKIP no python3"
fi

# one request through the proxy to upstream d: its live peer counts it
is "$(curl -s -m 5 "http://127.0.0.1:$port_d/")" "$b_uuid" "a request through upstream d"
curl -s -m 5 -o "$T/up.json" "http://127.0.0.1:$admin/upstreams"
like "$(peer "$b_port")" '"requests":1,"failures":0' "that peer's requests count is 1"

# two requests through upstream u: round robin tries the dead peer once, which fails
for i in 1 2; do curl -s -m 5 -o /dev/null "http://127.0.0.1:$port/"; done
curl -s -m 5 -o "$T/up.json" "http://127.0.0.1:$admin/upstreams"
like "$(peer "$dead")" '"state":"failed".*"down_for_ms":[1-9][0-9]*,.*"failures":1' \
	"the dead peer that failed shows state failed"
like "$(peer "$a_port")" '"state":"up".*"requests":2,' "the live peer served both"

# errors
is "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/nope")" 404 \
	"an unknown path answers 404"
is "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$admin/upstreams")" \
	405 "POST answers 405"
like "$(printf 'GET /upstreams HTTP/1.1\r\n\r\n' | raw 127.0.0.1 "$admin")" "^HTTP/1.1 400 " \
	"a malformed request (no Host) answers 400"

# a non-loopback admin listen is refused with file:line
cat >"$T/remote.conf" <<CONF
upstream u { server 127.0.0.1:$a_port; }
server { listen 127.0.0.1:$port; proxy_pass u; }
admin {
	listen 0.0.0.0:$admin;
}
CONF
out=$("$PROXYD" -t -c "$T/remote.conf" 2>&1)
rc=$?
like "$rc $out" "^[1-9][0-9]* .*remote.conf:4: admin listen address must be loopback \\(or set allow_remote on\\)" \
	"proxyd -t refuses a non-loopback admin listen with file:line"

# a reload keeps the admin socket and serves the new generation
gen1=$(grep -o '"generation":[0-9]*' "$T/up.json")
kill -HUP "$PROXYD_PID"
n=100
while [ "$n" -gt 0 ]; do
	curl -s -m 5 -o "$T/up.json" "http://127.0.0.1:$admin/upstreams"
	g=$(grep -o '"generation":[0-9]*' "$T/up.json")
	[ -n "$g" ] && [ "$g" != "$gen1" ] && break
	sleep 0.05
	n=$((n - 1))
done
ok $((n == 0)) "after a reload the admin endpoint answers with the new generation"

stop_proxyd >"$T/stop.rc"
is "$(cat "$T/stop.rc")" 0 "proxyd stops cleanly"
