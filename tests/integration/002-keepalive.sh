#!/usr/bin/env bash
# Keep-alive on both sides: pooled upstream connections are reused (and not with
# keepalive 0), a client reuses its connection, keepalive_timeout closes an idle client
# connection, keepalive_requests closes after the Nth response, and an upstream's
# keepalive_timeout closes its idle pooled connections.
. "$TESTLIB"
plan 18

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# urls N URL: curl arguments fetching URL N times, each body to /dev/null
urls() { local i; ARGS=(); for ((i = 0; i < $1; i++)); do ARGS+=(-o /dev/null "$2"); done; }

start_origin pooled
start_origin fresh
start_origin uidle
port=$(free_port_static) # upstream keepalive 8
port0=$(free_port_static) # upstream keepalive 0
port_idle=$(free_port_static) # client keepalive_timeout 1s
port_req=$(free_port_static) # client keepalive_requests 3
port_uidle=$(free_port_static) # upstream keepalive_timeout 1s
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream pooled { server 127.0.0.1:$pooled_port; keepalive 8; }
upstream fresh { server 127.0.0.1:$fresh_port; keepalive 0; }
upstream uidle { server 127.0.0.1:$uidle_port; keepalive 8; keepalive_timeout 1s; }
server { listen 127.0.0.1:$port; proxy_pass pooled; }
server { listen 127.0.0.1:$port0; proxy_pass fresh; }
server { listen 127.0.0.1:$port_idle; proxy_pass pooled; keepalive_timeout 1s; }
server { listen 127.0.0.1:$port_req; proxy_pass pooled; keepalive_requests 3; }
server { listen 127.0.0.1:$port_uidle; proxy_pass uidle; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

# --- upstream connections are pooled ---------------------------------------------------
# Each curl is a new client connection, so both workers get some of them. The /stats
# request itself is one origin connection, hence the "- 1".
before=$(origin_stat "$pooled_port" connections)
codes=$(for i in $(seq 1 200); do
	curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/"
done | sort | uniq -c | tr -s ' ' | sed 's/^ //')
after=$(origin_stat "$pooled_port" connections)
is "$codes" "200 200" "200 sequential requests through a pooling upstream all get 200"
used=$((after - before - 1))
diag "keepalive 8: 200 requests used $used upstream connection(s)"
ok $((used >= 1 && used <= 4 ? 0 : 1)) "keepalive 8, workers 2: at most 4 upstream connections for 200 requests (got $used)"

# --- keepalive 0: one upstream connection per request ------------------------------------
before=$(origin_stat "$fresh_port" connections)
urls 20 http://127.0.0.1:$port0/
codes=$(curl -s -w '%{http_code}\n' "${ARGS[@]}" | sort | uniq -c | tr -s ' ' | sed 's/^ //')
after=$(origin_stat "$fresh_port" connections)
is "$codes" "20 200" "20 requests through a keepalive 0 upstream all get 200"
is "$((after - before - 1))" 20 "keepalive 0: every request opens a new upstream connection"

# --- client keep-alive -------------------------------------------------------------------
urls 5 http://127.0.0.1:$port/
out=$(curl -s -w '%{http_code}:%{num_connects} ' "${ARGS[@]}")
is "$out" "200:1 200:0 200:0 200:0 200:0 " "curl with five URLs: five 200s over one client connection"

# HTTP/1.0 client asking for keep-alive gets it too
urls 2 "http://127.0.0.1:$port/"
out=$(curl -s -0 -H 'Connection: keep-alive' -w '%{http_code}:%{num_connects} ' "${ARGS[@]}")
is "$out" "200:1 200:0 " "an HTTP/1.0 client with Connection: keep-alive reuses its connection"

# --- keepalive_timeout 1s closes an idle client connection --------------------------------
exec 5<>"/dev/tcp/127.0.0.1/$port_idle"
printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' >&5
t0=$(now_ms)
# cat returns at EOF: the response arrives at once, the close about 1s later
resp=$(timeout 5 cat <&5)
rc=$?
t1=$(now_ms)
exec 5<&-
like "$resp" '^HTTP/1.1 200 ' "keepalive_timeout 1s: the request is answered"
is "$rc" 0 "keepalive_timeout 1s: the idle connection is closed (EOF within 5s)"
el=$((t1 - t0))
diag "idle connection closed after ${el} ms"
ok $((el >= 800 && el <= 3000 ? 0 : 1)) "the close comes after about 1s of idleness (${el} ms)"
unlike "$resp" '[Cc]onnection: close' "the response itself did not announce a close"

# --- keepalive_requests 3 ----------------------------------------------------------------
urls 4 http://127.0.0.1:$port_req/
out=$(curl -s -w '%{http_code}:%{num_connects} ' "${ARGS[@]}")
is "$out" "200:1 200:0 200:0 200:1 " "keepalive_requests 3: a new connection after the 3rd request"

# four pipelined requests: exactly three answers, the 3rd says Connection: close
resp=$(printf 'GET /?a HTTP/1.1\r\nHost: a\r\n\r\nGET /?b HTTP/1.1\r\nHost: a\r\n\r\nGET /?c HTTP/1.1\r\nHost: a\r\n\r\nGET /?d HTTP/1.1\r\nHost: a\r\n\r\n' |
	raw 127.0.0.1 "$port_req" | tr -d '\r')
is "$(printf '%s\n' "$resp" | grep -c '^HTTP/1.1 200 ')" 3 "keepalive_requests 3: three of four pipelined requests are answered"
third=$(printf '%s\n' "$resp" | awk '/^HTTP\/1.1 /{n++} n==3')
like "$third" "^[Cc]onnection: close" "the 3rd response carries Connection: close"
first2=$(printf '%s\n' "$resp" | awk '/^HTTP\/1.1 /{n++} n<3')
unlike "$first2" '[Cc]onnection: close' "the first two responses do not"

# --- an upstream's keepalive_timeout 1s closes its idle pooled connection -----------------
# established proxyd -> origin connections (the origin's own side has it as source port)
upconns() { ss -Htn state established "( dport = :$uidle_port )" | wc -l; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_uidle/")
is "$code" 200 "upstream keepalive_timeout 1s: the request is answered"
n=$(upconns)
is "$n" 1 "right after the response, one pooled connection to the origin"
for _ in $(seq 1 50); do
	[ "$(upconns)" -eq 0 ] && break
	sleep 0.1
done
is "$(upconns)" 0 "upstream keepalive_timeout 1s: the idle pooled connection is closed (within 5s)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_uidle/")
is "$code" 200 "a request after the idle close is answered on a new upstream connection"
