#!/usr/bin/env bash
# A request that reached a server which then died is repeated only when that is safe (#3).
# Two origins, both max_fails=0 (so both stay in rotation): one (origin -R) reads every
# request and its body and then resets the connection without answering, a server dying
# with the request in hand; the other is healthy. Round robin alternates between them.
# Each request is checked on its own, by the origins' counters before and after it:
#  - a POST whose body reached the dying origin gets 502 and is never sent to the other;
#  - a GET in the same situation is repeated on the other and succeeds (the control that
#    the failure really is retried when safe);
#  - with `proxy_next_upstream error timeout non_idempotent` a POST without a body is
#    repeated and succeeds, but a POST whose body went out still is not: proxyd streams
#    bodies and keeps no copy to send again (proxyd.conf(5), proxy_next_upstream).
. "$TESTLIB"
plan 14

start_origin dy -R
start_origin ok
p_def=$(free_port_static)
p_ni=$(free_port_static)
while [ "$p_ni" = "$p_def" ]; do p_ni=$(free_port_static); done
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream two {
	server 127.0.0.1:$dy_port max_fails=0;
	server 127.0.0.1:$ok_port max_fails=0;
	keepalive 4;
}
server { listen 127.0.0.1:$p_def; proxy_pass two; }
server { listen 127.0.0.1:$p_ni; proxy_pass two; proxy_next_upstream error timeout non_idempotent; }
CONF
start_proxyd "$T/proxyd.conf" "$p_def"
wait_port 127.0.0.1 "$p_ni" || bail "proxyd does not listen on $p_ni"

# the dying origin really takes the body and answers nothing
r=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -d hello "http://127.0.0.1:$dy_port/sink")
is "$r:$(origin_stat "$dy_port" body_bytes)" "000:5" "origin -R reads the POST body and resets without an answer"

# counters: "REQUESTS_DY BODY_DY REQUESTS_OK BODY_OK"
counters() {
	echo "$(origin_stat "$dy_port" requests) $(origin_stat "$dy_port" body_bytes)" \
		"$(origin_stat "$ok_port" requests) $(origin_stat "$ok_port" body_bytes)"
}
# one PORT CURL-ARGS...: one request; prints "CODE DY OK BODY_DY": its status, how many
# requests each origin got for it and the body bytes the dying one got (the /stats
# requests of counters() are taken out)
one() {
	local port=$1 code a b
	shift
	a=$(counters)
	code=$(curl -s -m 10 -o "$T/body" -w '%{http_code}' "$@" "http://127.0.0.1:$port/sink")
	b=$(counters)
	set -- $a $b
	echo "$code $(($5 - $1 - 2)) $(($7 - $3 - 2)) $(($6 - $2))"
}
# many N PORT CURL-ARGS...: N requests, one line each, into $T/many
many() {
	local n=$1 i
	shift
	for i in $(seq 1 "$n"); do one "$@"; done >"$T/many"
	sed 's/^/#   code dy ok body_dy: /' "$T/many"
}
# count REGEX: lines of $T/many matching
count() { grep -c -E "$1" "$T/many"; }

# --- POST with a body, default proxy_next_upstream ------------------------------------------------
many 4 "$p_def" -d hello
is "$(count '^(502 1 0 5|200 0 1 0)$')" 4 \
	"POST with a body: each one either died with the dying origin (502) or went to the healthy one"
n502=$(count '^502 1 0 5$')
ok "$([ "$n502" -ge 1 ] && echo 0 || echo 1)" "POST with a body: $n502 of 4 reached the dying origin, body and all"
is "$(count '^502 1 1')" 0 "POST with a body that reached the dying origin: never sent to the other"
ok "$([ "$(count '^200 0 1 0$')" -ge 1 ] && echo 0 || echo 1)" "POST with a body: the healthy origin still answers the others"
h=$(curl -s -m 10 -D - -o /dev/null -d hello "http://127.0.0.1:$p_def/sink" | tr -d '\r')
[ -z "$(printf '%s' "$h" | grep '^HTTP/1.1 502')" ] &&
	h=$(curl -s -m 10 -D - -o /dev/null -d hello "http://127.0.0.1:$p_def/sink" | tr -d '\r')
like "$h" "Proxy-Status: proxyd; error=connection_terminated; next-hop=\"127.0.0.1:$dy_port\"" \
	"the 502 names the dying origin and connection_terminated"

# --- GET, same situation: repeated on the other origin -------------------------------------------
many 4 "$p_def"
is "$(count '^200 (1 1|0 1) 0$')" 4 "GET: every one answered 200 by the healthy origin"
ok "$([ "$(count '^200 1 1 0$')" -ge 1 ] && echo 0 || echo 1)" \
	"GET: $(count '^200 1 1 0$') of 4 reached the dying origin first and were repeated"

# --- non_idempotent listed ------------------------------------------------------------------------
many 4 "$p_ni" -X POST
is "$(count '^200 (1 1|0 1) 0$')" 4 "non_idempotent, POST without a body: every one answered 200"
ok "$([ "$(count '^200 1 1 0$')" -ge 1 ] && echo 0 || echo 1)" \
	"non_idempotent, POST without a body: $(count '^200 1 1 0$') of 4 reached the dying origin first and were repeated"
many 4 "$p_ni" -d hello
is "$(count '^(502 1 0 5|200 0 1 0)$')" 4 \
	"non_idempotent, POST with a body: each one 502 from the dying origin or 200 from the healthy"
ok "$([ "$(count '^502 1 0 5$')" -ge 1 ] && echo 0 || echo 1)" \
	"non_idempotent, POST with a body sent: not repeated (the body is streamed, not kept)"

# --- default, POST without a body: not idempotent, not repeated -----------------------------------
many 4 "$p_def" -X POST
ok "$([ "$(count '^502 1 0 0$')" -ge 1 ] && [ "$(count '^(502 1 0|200 0 1) 0$')" = 4 ] && echo 0 || echo 1)" \
	"default, POST without a body that reached the dying origin: 502, not repeated"

like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
