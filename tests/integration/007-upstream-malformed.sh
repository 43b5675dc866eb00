#!/usr/bin/env bash
# Malformed responses from the origin (/bad/KIND): the client gets proxyd's own 502 and
# none of the origin's bytes (its X-Origin-* fields, its "hello" body, the bad fields).
# proxyd keeps serving afterwards.
. "$TESTLIB"
plan 21

start_origin o
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; }
server { listen 127.0.0.1:$port; proxy_pass o; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

# Every bad response carries X-Origin-* fields and the body "hello"; some add X-Folded or
# X-Nul. None of it may reach the client.
origin_bytes='X-Origin|hello|X-Folded|X-Nul|Transfer-Encoding'

# bad-chunk: the head is valid ("200 OK", chunked) and the chunk-size line "zz" is not;
# the origin writes both at once, so proxyd has them before any byte went to the client
# and can still answer 502 instead of relaying a head it cannot complete.
for kind in bare-lf dup-cl cl-te bad-status space-colon obs-fold nul garbage bad-chunk; do
	out=$(curl -s -i --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$port/bad/$kind")
	rc=$?
	code=${out##*$'\n'}
	[ "$code" = 502 ] || diag "/bad/$kind: curl exit status $rc, status '$code'"
	out=${out%$'\n'*}
	is "$code" 502 "/bad/$kind: the client gets 502"
	unlike "$out" "$origin_bytes" "/bad/$kind: none of the origin's bytes are relayed"
done

like "$(cat "$T/proxyd.log")" 'sent an invalid response' "the error log names the invalid response"
kill -0 "$PROXYD_PID" 2>/dev/null
ok $? "proxyd is still running"
is "$(curl -s --max-time 5 "http://127.0.0.1:$port/")" "$o_uuid" "proxyd keeps serving the same origin afterwards"
