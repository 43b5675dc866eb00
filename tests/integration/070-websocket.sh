#!/usr/bin/env bash
# WebSocket through the reverse proxy with a real client (Debian's node-ws): messages echo
# byte for byte; 10 MiB of messages pass with the proxy's RSS bounded; a close by either
# side closes the other; an open WebSocket counts as an active request of its peer (what
# least_conn balances on); Upgrade: h2c is never passed on; a refused upgrade (the origin
# answers without 101) stays plain HTTP.
. "$TESTLIB"
command -v node >/dev/null 2>&1 || skip_all "node is not installed (tools/deps installs node-ws)"
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
node -e 'require("ws")' 2>/dev/null || skip_all "node-ws is not installed (tools/deps)"
plan 12
WS="$TOP_SRCDIR/tests/ws/ws.js"

node "$WS" server >"$T/ws.out" 2>"$T/ws.err" &
PIDS="$PIDS $!"
for _ in $(seq 1 100); do grep -q '^READY ' "$T/ws.out" && break; sleep 0.05; done
wport=$(sed -n 's/^READY port=//p' "$T/ws.out")
[ -n "$wport" ] || bail "the WebSocket echo server did not start"
start_origin o1
port=$(free_port_static)
pport=$(free_port_static)
aport=$(free_port_static)
while [ "$pport" = "$port" ]; do pport=$(free_port_static); done
while [ "$aport" = "$port" ] || [ "$aport" = "$pport" ]; do aport=$(free_port_static); done
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream ws { balance least_conn; server 127.0.0.1:$wport; }
upstream plain { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$port; proxy_pass ws; access_log $T/access.log; }
server { listen 127.0.0.1:$pport; proxy_pass plain; }
admin { listen 127.0.0.1:$aport; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

out=$(node "$WS" client "ws://127.0.0.1:$port/" --count 20 --size 1000)
like "$out" "^OK 20 20000" "20 messages echo byte for byte"
like "$out" "CLOSED 1000" "the client's close reaches the server and comes back"
sleep 0.2
like "$(cat "$T/ws.err")" "closed 1000" "the server saw the client's close"

node "$WS" client "ws://127.0.0.1:$port/" --count 160 --size 65536 >"$T/big.out" &
cpid=$!
max=0
while kill -0 "$cpid" 2>/dev/null; do
	r=$(rss_kb "$PROXYD_PID")
	[ "$r" -gt "$max" ] && max=$r
	sleep 0.02
done
wait "$cpid"
like "$(cat "$T/big.out")" "^OK 160 10485760" "10 MiB of messages echo"
[ "$max" -gt 0 ] && [ "$max" -lt 32768 ]
ok $? "proxyd's RSS stayed under 32 MiB ($max KiB)"

out=$(node "$WS" client "ws://127.0.0.1:$port/" --count 1 --size 10 --close-by server)
like "$out" "CLOSED 4000" "a close by the server reaches the client"

# an open WebSocket is an active request of its peer
# (polled: node may take a while to start on a loaded machine; the hold outlasts the poll)
# active_ws N: poll the admin endpoint (4 s at most) until ws has N active requests
active_ws() {
	for _ in $(seq 1 80); do
		up=$(curl -s "http://127.0.0.1:$aport/upstreams")
		[[ $up =~ \"name\":\"ws\".*\"active\":$1, ]] && break
		sleep 0.05
	done
}
node "$WS" client "ws://127.0.0.1:$port/" --count 1 --size 10 --hold 5000 >"$T/hold.out" &
hpid=$!
active_ws 1
like "$up" '"name":"ws".*"active":1,' "the open WebSocket counts as an active request"
wait "$hpid"
active_ws 0
like "$up" '"name":"ws".*"active":0,' "and stops counting when it closes"
like "$(tail -1 "$T/access.log")" '"GET / HTTP/1.1" 101 [0-9]+ .* tunnel=[0-9.]+s up=[0-9]+ down=[0-9]+' \
	"the access log has the upgraded connection's duration and bytes"

# h2c and other upgrades are not passed on
got=$(curl -s -H 'Connection: Upgrade, HTTP2-Settings' -H 'Upgrade: h2c' \
	-H 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA' "http://127.0.0.1:$pport/echo")
like "$got" "GET /echo HTTP/1.1" "an h2c upgrade request is answered as plain HTTP"
unlike "$got" "[Uu]pgrade|HTTP2-Settings" "no Upgrade (nor what Connection named) reaches the origin"
# the origin does not speak WebSocket: it answers 200, and that is relayed as is
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
	-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
	"http://127.0.0.1:$pport/")
is "$code" 200 "an upgrade the origin does not take stays plain HTTP"
