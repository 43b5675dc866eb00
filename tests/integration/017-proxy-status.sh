#!/usr/bin/env bash
# Errors proxyd generates carry an RFC 9209 Proxy-Status naming the error type and the
# upstream; when every peer is marked down the answer is 503 with Retry-After, and the
# error log says so once per transition, not once per request.
. "$TESTLIB"
plan 16

start_origin o
start_origin bh -N   # accepts nothing: connects to it time out once its queue is full
dead1=$(dead_port)
dead2=$(dead_port)
while [ "$dead2" = "$dead1" ]; do dead2=$(dead_port); done
p_one=$(free_port_static)
p_dead=$(free_port_static)
p_bh=$(free_port_static)
p_all=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream one { server 127.0.0.1:$o_port; }
upstream dead { server 127.0.0.1:$dead1; }
upstream bh { server 127.0.0.1:$bh_port; }
upstream all {
	server 127.0.0.1:$dead1 max_fails=1 fail_timeout=30s;
	server 127.0.0.1:$dead2 max_fails=1 fail_timeout=30s;
}
server { listen 127.0.0.1:$p_one; proxy_pass one; proxy_read_timeout 1s; }
server { listen 127.0.0.1:$p_dead; proxy_pass dead; }
server { listen 127.0.0.1:$p_bh; proxy_pass bh; proxy_connect_timeout 1s; }
server { listen 127.0.0.1:$p_all; proxy_pass all; }
CONF
start_proxyd "$T/proxyd.conf" "$p_one"

# head STATUS-LINE-AND-HEADERS of one request
head_of() { curl -s -m 10 -D - -o /dev/null "$@" | tr -d '\r'; }

h=$(head_of "http://127.0.0.1:$p_dead/")
like "$h" '^HTTP/1.1 502' "refused connection: 502"
like "$h" "Proxy-Status: proxyd; error=connection_refused; next-hop=\"127.0.0.1:$dead1\"" \
	"refused connection: Proxy-Status connection_refused names the peer"

h=$(head_of "http://127.0.0.1:$p_one/hang")
like "$h" '^HTTP/1.1 504' "read timeout: 504"
like "$h" "Proxy-Status: proxyd; error=http_response_timeout; next-hop=\"127.0.0.1:$o_port\"" \
	"read timeout: Proxy-Status http_response_timeout"

h=$(head_of "http://127.0.0.1:$p_one/bad/garbage")
like "$h" '^HTTP/1.1 502' "invalid response: 502"
like "$h" 'Proxy-Status: proxyd; error=http_protocol_error; next-hop=' \
	"invalid response: Proxy-Status http_protocol_error"

out=$(printf 'GET / HTTP/1.1\r\n\r\n' | raw 127.0.0.1 "$p_one" | tr -d '\r')
like "$out" '^HTTP/1.1 400' "request without Host: 400"
like "$out" 'Proxy-Status: proxyd; error=http_request_error' \
	"a refused request: Proxy-Status http_request_error, no next hop"

fill_accept_queue "$bh_port"
h=$(head_of "http://127.0.0.1:$p_bh/")
like "$h" '^HTTP/1.1 504' "connect timeout: 504"
like "$h" "Proxy-Status: proxyd; error=connection_timeout; next-hop=\"127.0.0.1:$bh_port\"" \
	"connect timeout: Proxy-Status connection_timeout"

# every peer refuses: the first request tries both (502) and marks them down
h=$(head_of "http://127.0.0.1:$p_all/")
like "$h" '^HTTP/1.1 502' "all peers refuse: the request that tries them gets 502"
h=$(head_of "http://127.0.0.1:$p_all/")
like "$h" '^HTTP/1.1 503' "all peers marked down: 503"
like "$h" 'Proxy-Status: proxyd; error=destination_unavailable' \
	"all peers marked down: Proxy-Status destination_unavailable"
ra=$(printf '%s\n' "$h" | sed -n 's/^Retry-After: //p')
ok $([ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 30 ] && echo 0 || echo 1) \
	"Retry-After is the time until a peer may be tried again ($ra s of fail_timeout 30s)"
for _ in 1 2 3; do head_of "http://127.0.0.1:$p_all/" >/dev/null; done
n=$(grep -c 'upstream "all": no live peers' "$T/proxyd.log")
is "$n" 1 "four 503s, one log line for the transition"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_one/")" 200 \
	"other upstreams are unaffected"
