#!/usr/bin/env bash
# Pipelined requests are answered in order (bodies included), Expect: 100-continue gets
# its interim response, and HTTP/1.0 requests (without Host) work and close unless they
# ask for keep-alive.
. "$TESTLIB"
plan 25

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

start_origin o
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass o; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

# --- three pipelined GETs in one write ------------------------------------------------------
t0=$(now_ms)
resp=$(printf "GET /headers?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /headers?2 HTTP/1.1\r\nHost: a\r\n\r\nGET /headers?3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" |
	raw 127.0.0.1 "$port" | tr -d '\r')
el=$(($(now_ms) - t0))
is "$(printf '%s\n' "$resp" | grep -c '^HTTP/1.1 200 ')" 3 "three pipelined requests: three 200 responses"
is "$(printf '%s\n' "$resp" | sed -n 's/^GET \/headers?\([0-9]\) HTTP\/1.1$/\1/p' | tr -d '\n')" 123 \
	"the responses come in request order"
is "$(printf '%s\n' "$resp" | grep -ci '^connection: close')" 1 "only the last response says Connection: close"
ok $((el < 3000 ? 0 : 1)) "the connection closes after the third response ($el ms)"

# --- a pipelined POST with a body, then a GET ----------------------------------------------------
# "hello world": 11 bytes, byte sum 1116
resp=$(printf "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello worldGET /headers?after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" |
	raw 127.0.0.1 "$port" | tr -d '\r')
is "$(printf '%s\n' "$resp" | grep -c '^HTTP/1.1 200 ')" 2 "pipelined POST + GET: two 200 responses"
is "$(printf '%s\n' "$resp" | grep -E '^(POST /echo|GET /headers\?after) ' | cut -d' ' -f1 | tr '\n' ' ')" "POST GET " \
	"pipelined POST + GET: in order"
like "$resp" '^body-length: 11$' "pipelined POST: the origin got the 11-byte body"
like "$resp" '^body-sum: 1116$' "pipelined POST: ... with the right bytes"

# the same with a chunked body
resp=$(printf "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\nGET /headers?after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" |
	raw 127.0.0.1 "$port" | tr -d '\r')
is "$(printf '%s\n' "$resp" | grep -E '^(HTTP/1.1 200 |POST /echo |GET /headers\?after )' | awk '{print $1}' | tr '\n' ' ')" \
	"HTTP/1.1 POST HTTP/1.1 GET " "pipelined chunked POST + GET: two answers, in order"
like "$resp" '^body-sum: 1116$' "pipelined chunked POST: the origin got the whole body"

# --- Expect: 100-continue ------------------------------------------------------------------------
# curl waits up to 1s for the 100 before it sends the body anyway; a quick answer shows
# that proxyd sent it.
t0=$(now_ms)
out=$(head -c 102400 /dev/zero | curl -sv -H 'Expect: 100-continue' --data-binary @- \
	"http://127.0.0.1:$port/sink" 2>&1 | tr -d '\r')
el=$(($(now_ms) - t0))
st=$(printf '%s\n' "$out" | sed -n 's/^< \(HTTP\/1.1 [0-9]*\).*/\1/p' | tr '\n' ',')
is "$st" "HTTP/1.1 100,HTTP/1.1 200," "Expect: 100-continue: 100 Continue, then 200"
like "$out" '^102400 0$' "Expect: 100-continue: the origin got the 100 KB body"
ok $((el < 900 ? 0 : 1)) "the 100 Continue came at once, curl did not wait out its timer ($el ms)"

# by hand: the 100 comes before any body byte is sent
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n' >&5
interim=$(read_response 5 3 | tr -d '\r')
like "$interim" '^HTTP/1.1 100 Continue' "raw Expect: 100-continue: 100 Continue before the body"
printf 'hello' >&5
final=$(read_response 5 3 | tr -d '\r')
like "$final" '^HTTP/1.1 200 ' "raw Expect: 100-continue: then 200 after the body"
like "$final" '^5 532$' "raw Expect: 100-continue: the origin got the 5 bytes"
exec 5<&-

# --- HTTP/1.0 without Host -----------------------------------------------------------------------
t0=$(now_ms)
resp=$(printf 'GET / HTTP/1.0\r\n\r\n' | raw_close 127.0.0.1 "$port" 3 | tr -d '\r')
rc=$?
el=$(($(now_ms) - t0))
like "$resp" '^HTTP/1.[01] 200 ' "HTTP/1.0 without Host: 200"
like "$resp" "^$o_uuid\$" "HTTP/1.0 without Host: the origin's answer"
is "$rc" 0 "HTTP/1.0 without Host: the connection closes after the response"
like "$resp" '^[Cc]onnection: close' "HTTP/1.0 without Host: Connection: close"
# proxyd forwards as HTTP/1.1, which requires a Host field (RFC 9112 3.2); strict origins
# answer 400 without one
resp=$(printf 'GET /headers HTTP/1.0\r\n\r\n' | raw 127.0.0.1 "$port" | tr -d '\r')
like "$resp" '^GET /headers HTTP/1.1$' "HTTP/1.0 without Host: forwarded as HTTP/1.1"
like "$resp" '^[Hh]ost:' "HTTP/1.0 without Host: the forwarded HTTP/1.1 request carries a Host field"

# with Connection: keep-alive the connection stays open for a second request
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' >&5
r1=$(read_response 5 3 | tr -d '\r')
like "$r1" '^[Cc]onnection: keep-alive' "HTTP/1.0 with Connection: keep-alive: the response says keep-alive"
printf 'GET /headers?second HTTP/1.0\r\n\r\n' >&5
r2=$(read_response 5 3 | tr -d '\r')
like "$r2" '^GET /headers\?second ' "HTTP/1.0 keep-alive: a second request on the same connection is answered"
# that one did not ask for keep-alive: now it closes
timeout 3 cat <&5 >/dev/null
is "$?" 0 "HTTP/1.0: closed after a request without keep-alive"
exec 5<&-
