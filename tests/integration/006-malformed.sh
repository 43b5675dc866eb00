#!/usr/bin/env bash
# The strict request parser (proxyd/http.h): every malformed-request class, sent as raw
# bytes, gets its status, the connection is closed after it, and nothing reaches the
# origin. Then the accepted counterparts: absolute-form with a differing Host, and valid
# requests after the batch.
. "$TESTLIB"
plan 55

start_origin o
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; }
server {
	listen 127.0.0.1:$port;
	proxy_pass o;
	client_max_header_size 4k;
	client_max_target 1k;
	client_max_headers 20;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"

# rep N STR: STR repeated N times
rep() { local s; printf -v s '%*s' "$1" ''; printf '%s' "${s// /$2}"; }

# send: the raw request on stdin; sets OUT (what came back) and RC (raw_close's status:
# 0 when proxyd closed the connection).
send() {
	OUT=$(raw_close 127.0.0.1 "$port" 5; echo "#rc=$?")
	RC=${OUT##*#rc=}
	OUT=${OUT%#rc=*}
}

# check NAME WANT: the raw request on stdin gets status WANT, then the connection closes.
check() {
	send
	is "$(status_of "$OUT")" "$2" "$1: $2"
	is "$RC" 0 "$1: connection closed after the $2"
}

H='Host: t\r\n'
# /stats counts itself, so across a batch that reaches nothing it grows by exactly one.
before=$(origin_stat "$o_port" requests)

# --- framing: Content-Length and Transfer-Encoding ---------------------------------------
check "duplicate equal Content-Length" 400 < <(printf "POST /echo HTTP/1.1\r\n$H"'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello')
check "conflicting Content-Length" 400 < <(printf "POST /echo HTTP/1.1\r\n$H"'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!')
check "Content-Length list '5, 5'" 400 < <(printf "POST /echo HTTP/1.1\r\n$H"'Content-Length: 5, 5\r\n\r\nhello')
check "Content-Length with a sign '+5'" 400 < <(printf "POST /echo HTTP/1.1\r\n$H"'Content-Length: +5\r\n\r\nhello')
check "Transfer-Encoding: gzip, chunked" 501 < <(printf "POST /echo HTTP/1.1\r\n$H"'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n')
check "Transfer-Encoding: foo (unknown coding)" 501 < <(printf "POST /echo HTTP/1.1\r\n$H"'Transfer-Encoding: foo\r\n\r\n')
check "Transfer-Encoding: chunked, chunked" 400 < <(printf "POST /echo HTTP/1.1\r\n$H"'Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n')
check "Content-Length with Transfer-Encoding" 400 < <(printf "POST /echo HTTP/1.1\r\n$H"'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
check "Transfer-Encoding on HTTP/1.0" 400 < <(printf "POST /echo HTTP/1.0\r\n$H"'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n')

# --- line endings and field syntax --------------------------------------------------------
check "bare CR in a header value" 400 < <(printf "GET / HTTP/1.1\r\n$H"'X-A: a\rb\r\n\r\n')
check "bare LF line endings" 400 < <(printf 'GET / HTTP/1.1\nHost: t\n\n')
check "obs-fold" 400 < <(printf "GET / HTTP/1.1\r\n$H"'X-A: a\r\n b\r\n\r\n')
check "whitespace before the colon" 400 < <(printf "GET / HTTP/1.1\r\n$H"'X-A : 1\r\n\r\n')
check "invalid token character in a header name" 400 < <(printf "GET / HTTP/1.1\r\n$H"'X@A: 1\r\n\r\n')
check "control byte (0x01) in a value" 400 < <(printf "GET / HTTP/1.1\r\n$H"'X-A: a\001b\r\n\r\n')
check "NUL in a value" 400 < <(printf "GET / HTTP/1.1\r\n$H"'X-A: a\0b\r\n\r\n')

# --- limits: client_max_header_size 4k, client_max_target 1k, client_max_headers 20 ------
big=$(rep 1000 a)
check "header block of 5k over client_max_header_size 4k" 431 < <(printf "GET / HTTP/1.1\r\n$H"
	for i in 1 2 3 4 5; do printf 'X-Big-%s: %s\r\n' $i "$big"; done; printf '\r\n')
check "target of 1101 bytes over client_max_target 1k" 414 < <(printf "GET /$(rep 1100 a) HTTP/1.1\r\n$H\r\n")
check "25 headers over client_max_headers 20" 431 < <(printf "GET / HTTP/1.1\r\n$H"
	for i in $(seq 1 24); do printf 'X-N%s: %s\r\n' $i $i; done; printf '\r\n')

# --- Host, method, version ----------------------------------------------------------------
check "missing Host on HTTP/1.1" 400 < <(printf 'GET / HTTP/1.1\r\nX-A: 1\r\n\r\n')
check "two Host headers" 400 < <(printf "GET / HTTP/1.1\r\n$H"'Host: u\r\n\r\n')
check "invalid method token 'G(T'" 400 < <(printf "G(T / HTTP/1.1\r\n$H\r\n")
check "HTTP/2.0 version" 505 < <(printf "GET / HTTP/2.0\r\n$H\r\n")

after=$(origin_stat "$o_port" requests)
is "$((after - before))" 1 "none of the 23 malformed requests reached the origin (requests $before -> $after, /stats counts itself)"

# --- a bad chunked request body ------------------------------------------------------------
# The head is valid, so proxyd forwards it (with its own chunked framing) before it sees the
# body; the origin may count the request. The chunk-size line "zz" must end the exchange:
# the client gets 400, or at least a closed connection, and never the origin's /echo answer
# (which would mean a body was forwarded as complete).
send < <(printf "POST /echo HTTP/1.1\r\n$H"'Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')
st=$(status_of "$OUT")
diag "bad chunk size: status '${st:-none}', raw_close status $RC"
ok $([ "$st" = 400 ] || { [ -z "$OUT" ] && [ "$RC" = 0 ]; } && echo 0 || echo 1) \
	"bad chunk size 'zz': 400 (or the connection is closed without a response)"
unlike "$OUT" 'body-length|X-Origin-Id' "bad chunk size 'zz': the origin's answer is not relayed"
is "$RC" 0 "bad chunk size 'zz': connection closed"

# --- accepted: absolute-form, the URI's authority wins over Host -------------------------
send < <(printf 'GET http://example.test:1234/headers HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n')
is "$(status_of "$OUT")" 200 "absolute-form request is accepted"
is "$(grep -c '^GET /headers HTTP/1\.1$' <<<"$OUT")" 1 "absolute-form is forwarded in origin-form (GET /headers)"
hosts=$(printf '%s' "$OUT" | grep -i '^Host:' | tr '\n' '|')
is "$hosts" "Host: example.test:1234|" "absolute-form: Host is rewritten to the URI's authority (one Host: example.test:1234)"

# --- valid requests still pass after the batch --------------------------------------------
is "$(curl -s "http://127.0.0.1:$port/")" "$o_uuid" "a valid GET still passes after the batch"
body=$(curl -s --data-binary hello "http://127.0.0.1:$port/echo")
like "$body" 'body-length: 5' "a valid POST with a body still passes after the batch"
