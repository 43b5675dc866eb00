#!/usr/bin/env bash
# Client-side timeouts: client_header_timeout (half a head, or nothing at all),
# keepalive_timeout after a request, client_body_timeout (a stalled body, while a slow but
# steady body is fine), and proxyd still serves afterwards.
. "$TESTLIB"
plan 18

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# until_eof FD: reads FD until EOF (at most 5s); sets OUT to what arrived (CRs removed),
# EL to the ms it took and EOF_RC to 0 on EOF, 124 if the connection was still open.
until_eof() {
	local t0
	t0=$(now_ms)
	timeout 5 cat <&"$1" >"$T/eof.out"
	EOF_RC=$?
	EL=$(($(now_ms) - t0))
	OUT=$(tr -d "\r" <"$T/eof.out")
}

# about NAME MS LOW HIGH: MS lies in [LOW, HIGH]
about() { ok $(($2 >= $3 && $2 <= $4 ? 0 : 1)) "$1 ($2 ms)"; }

start_origin o
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; keepalive 8; }
server {
	listen 127.0.0.1:$port;
	proxy_pass o;
	client_header_timeout 1s;
	keepalive_timeout 2s;
	client_body_timeout 1s;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"

# --- half a head --------------------------------------------------------------------------------
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: a\r\n' >&5
until_eof 5
exec 5<&-
is "$EOF_RC" 0 "half a head: the connection is closed"
about "half a head: after about client_header_timeout 1s" "$EL" 800 3000
like "$OUT" '^(HTTP/1.1 408 |$)' "half a head: 408 or a plain close"
diag "half a head got: $(printf '%s' "$OUT" | head -1)"

# --- nothing at all ---------------------------------------------------------------------------------
exec 5<>"/dev/tcp/127.0.0.1/$port"
until_eof 5
exec 5<&-
is "$EOF_RC" 0 "a connection that sends nothing is closed"
about "... after client_header_timeout 1s, not keepalive_timeout 2s" "$EL" 800 1800
is "$OUT" "" "... without a response"

# --- idle after a request: keepalive_timeout -------------------------------------------------------
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' >&5
until_eof 5
exec 5<&-
like "$OUT" '^HTTP/1.1 200 ' "after a request: answered"
is "$EOF_RC" 0 "after a request: the idle connection is closed"
about "... after keepalive_timeout 2s" "$EL" 1800 3500

# half of a second head on a keep-alive connection: the header timeout applies again
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' >&5
r=$(read_response 5 3 | tr -d '\r')
sleep 0.3
printf 'GET / HTTP/1.1\r\nHo' >&5
until_eof 5
exec 5<&-
like "$OUT" '^(HTTP/1.1 408 |$)' "half a second head: 408 or a plain close"
about "... after client_header_timeout 1s from the first byte" "$EL" 800 1700

# --- a stalled body -------------------------------------------------------------------------------------
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789' >&5
until_eof 5
exec 5<&-
is "$EOF_RC" 0 "Content-Length: 100 but 10 bytes sent: the connection is closed"
about "... after about client_body_timeout 1s" "$EL" 800 3000
like "$OUT" '^(HTTP/1.1 408 |$)' "... with 408 or a plain close"
diag "stalled body got: $(printf '%s' "$OUT" | head -1)"

# --- a slow but steady body is fine: the timeout is between two reads -----------------------------------
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n' >&5
for c in a b c d e; do
	sleep 0.4
	printf '%s' "$c" >&5 2>/dev/null
done
until_eof 5
exec 5<&-
like "$OUT" '^HTTP/1.1 200 ' "a body sent a byte every 0.4s for 2s with client_body_timeout 1s: 200"
like "$OUT" '^5 495$' "... and the origin got all of it"

# --- still serving ------------------------------------------------------------------------------------------
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 200 "proxyd still serves"
ok "$(kill -0 "$PROXYD_PID" 2>/dev/null && echo 0 || echo 1)" "proxyd is still running"
