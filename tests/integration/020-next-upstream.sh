#!/usr/bin/env bash
# proxy_next_upstream (#3): which failures send a request on to the next peer, that a
# request which may have reached a peer is repeated only when idempotent (or with an
# Idempotency-Key, or non_idempotent), that a refused connect is always repeatable, that
# the last try's http_NNN answer is relayed, and that _tries and `off` stop retrying.
. "$TESTLIB"
plan 24

start_origin a
start_origin b
dead=$(dead_port)
p_503=$(free_port_static)
p_def=$(free_port_static)
p_hang=$(free_port_static)
p_tries=$(free_port_static)
p_dpost=$(free_port_static)
p_off=$(free_port_static)
# max_fails=0: the failures below must not mark peers down, so every test sees both
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream two {
	server 127.0.0.1:$a_port max_fails=0;
	server 127.0.0.1:$b_port max_fails=0;
}
upstream deada {
	server 127.0.0.1:$dead max_fails=0;
	server 127.0.0.1:$a_port max_fails=0;
}
server { listen 127.0.0.1:$p_503; proxy_pass two; proxy_next_upstream error timeout http_503; }
server { listen 127.0.0.1:$p_def; proxy_pass two; }
server { listen 127.0.0.1:$p_hang; proxy_pass two; proxy_read_timeout 1s; }
server {
	listen 127.0.0.1:$p_tries;
	proxy_pass two;
	proxy_next_upstream error timeout http_503;
	proxy_next_upstream_tries 1;
}
server { listen 127.0.0.1:$p_dpost; proxy_pass deada; }
server { listen 127.0.0.1:$p_off; proxy_pass deada; proxy_next_upstream off; }
CONF
start_proxyd "$T/proxyd.conf" "$p_503"

# requests the origins served: origin_stat counts its own /stats request too
reqs() { echo "$(origin_stat "$a_port" requests) $(origin_stat "$b_port" requests)"; }
# seen BEFORE AFTER: how many proxied requests a and b got in between, as "A B"
seen() {
	set -- $1 $2
	echo "$(($3 - $1 - 1)) $(($4 - $2 - 1))"
}
head_of() { curl -s -m 20 -D - -o /dev/null "$@" | tr -d '\r'; }

# --- http_503 listed: both peers are tried, the last answer is relayed --------------------------
r0=$(reqs)
h=$(head_of "http://127.0.0.1:$p_503/status/503")
r1=$(reqs)
like "$h" '^HTTP/1.1 503' "http_503 listed, both peers answer 503: the last 503 is relayed"
like "$h" "X-Origin-Id: ($a_uuid|$b_uuid)" "the relayed 503 is the origin's own"
unlike "$h" 'Proxy-Status' "the relayed 503 is not a proxyd error"
is "$(seen "$r0" "$r1")" "1 1" "http_503 listed: both peers were tried"

r0=$(reqs)
h=$(head_of -X POST -d x "http://127.0.0.1:$p_503/status/503")
r1=$(reqs)
like "$h" '^HTTP/1.1 503' "POST answered 503: relayed"
s=$(seen "$r0" "$r1")
is "$((${s% *} + ${s#* }))" 1 "POST answered 503: not repeated (not idempotent)"

# --- http_503 not listed (default): one peer ---------------------------------------------------
r0=$(reqs)
h=$(head_of "http://127.0.0.1:$p_def/status/503")
r1=$(reqs)
like "$h" '^HTTP/1.1 503' "default conditions: the 503 is relayed"
s=$(seen "$r0" "$r1")
is "$((${s% *} + ${s#* }))" 1 "default conditions: only one peer is tried on a 503"

# --- proxy_next_upstream_tries 1 -----------------------------------------------------------------
r0=$(reqs)
h=$(head_of "http://127.0.0.1:$p_tries/status/503")
r1=$(reqs)
like "$h" '^HTTP/1.1 503' "proxy_next_upstream_tries 1: the 503 is relayed"
s=$(seen "$r0" "$r1")
is "$((${s% *} + ${s#* }))" 1 "proxy_next_upstream_tries 1: only one try"

# --- a refused connect is repeatable even for a POST with a body ----------------------------------
codes=""
for i in 1 2 3 4; do
	codes="$codes $(curl -s -m 10 -o "$T/post$i" -w '%{http_code}' -d hello "http://127.0.0.1:$p_dpost/sink")"
done
is "$codes" " 200 200 200 200" "POST with a body, first peer refuses: every request succeeds"
is "$(cat "$T/post1" | cut -d' ' -f1)" 5 "the retried POST's body reaches the live peer whole"

# --- off: not even a refused connect is retried --------------------------------------------------
codes=""
for i in 1 2 3 4; do
	codes="$codes $(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_off/")"
done
like "$codes" '502' "proxy_next_upstream off: a refused connect gives 502 ($codes)"
like "$codes" '200' "proxy_next_upstream off: the live peer still serves ($codes)"
h=$(head_of "http://127.0.0.1:$p_off/")
[ -z "$(printf '%s' "$h" | grep '^HTTP/1.1 502')" ] && h=$(head_of "http://127.0.0.1:$p_off/")
like "$h" "Proxy-Status: proxyd; error=connection_refused; next-hop=\"127.0.0.1:$dead\"" \
	"proxy_next_upstream off: the 502 names the refusing peer"

# --- read timeout: GET is repeated, POST only with an Idempotency-Key ------------------------------
r0=$(reqs)
h=$(head_of "http://127.0.0.1:$p_hang/hang")
r1=$(reqs)
like "$h" '^HTTP/1.1 504' "GET /hang, both peers time out: 504"
is "$(seen "$r0" "$r1")" "1 1" "GET /hang: repeated on the other peer"

r0=$(reqs)
h=$(head_of -X POST "http://127.0.0.1:$p_hang/hang")
r1=$(reqs)
like "$h" '^HTTP/1.1 504' "POST /hang: 504"
s=$(seen "$r0" "$r1")
is "$((${s% *} + ${s#* }))" 1 "POST /hang: not repeated (it reached the peer)"

r0=$(reqs)
h=$(head_of -X POST -H 'Idempotency-Key: k1' "http://127.0.0.1:$p_hang/hang")
r1=$(reqs)
like "$h" '^HTTP/1.1 504' "POST /hang with an Idempotency-Key: 504"
is "$(seen "$r0" "$r1")" "1 1" "POST /hang with an Idempotency-Key: repeated on the other peer"

# the body is streamed, not kept: once a byte of it went out, no retry
r0=$(reqs)
h=$(head_of -H 'Idempotency-Key: k2' -d x "http://127.0.0.1:$p_hang/hang")
r1=$(reqs)
like "$h" '^HTTP/1.1 504' "POST /hang with a key and a body: 504"
s=$(seen "$r0" "$r1")
is "$((${s% *} + ${s#* }))" 1 "POST /hang with a key and a body sent: not repeated"

is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_def/")" 200 "proxyd still serves"
