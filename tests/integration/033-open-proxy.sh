#!/usr/bin/env bash
# No open proxy: a forward server without an ACL serves clients from loopback and private
# networks only. A network namespace (created here, removed at exit) gives the test a
# client address outside them, 198.51.100.7, on its own loopback interface; the same
# proxy still serves 127.0.0.1 there. Limits come before that refusal (nginx's preaccess
# before access): a client refused over and over gets 429 once past its burst, and the
# loopback client keeps its own allowance.
. "$TESTLIB"
command -v ip >/dev/null 2>&1 || skip_all "no ip(8)"
[ "$(id -u)" = 0 ] || skip_all "network namespaces need root"
ns="proxyd-test-$$"
ip netns add "$ns" 2>/dev/null || skip_all "cannot create a network namespace"
trap 'ip netns del "$ns" 2>/dev/null; cleanup' EXIT
plan 7

nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up || bail "lo up failed"
nsx ip addr add 198.51.100.7/32 dev lo || bail "cannot add the test address"

# ip execs the program, so $! is its PID (a shell function run with & would be a subshell,
# and killing that would leave the program running)
ip netns exec "$ns" "$ORIGIN" -p 0 >"$T/origin.out" 2>"$T/origin.err" &
PIDS="$PIDS $!"
for _ in $(seq 1 100); do grep -q '^READY ' "$T/origin.out" && break; sleep 0.05; done
oport=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$T/origin.out")
[ -n "$oport" ] || bail "origin did not start in the namespace"
port=18080
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
server { listen 0.0.0.0:$port; mode forward; }
limit_req_zone oc key=client rate=1r/m;
server { listen 0.0.0.0:$((port + 1)); mode forward; limit_req oc burst=2; }
CONF
ip netns exec "$ns" "$PROXYD" -f -c "$T/proxyd.conf" >"$T/proxyd.out" 2>"$T/proxyd.log" &
PIDS="$PIDS $!"
for _ in $(seq 1 100); do
	nsx curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break
	sleep 0.05
done

code=$(nsx curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$port" "http://127.0.0.1:$oport/")
is "$code" 200 "a loopback client is served"
code=$(nsx curl -s -o "$T/body" -w '%{http_code}' --interface 198.51.100.7 \
	-x "http://198.51.100.7:$port" "http://127.0.0.1:$oport/")
is "$code" 403 "a client outside the private networks gets 403 without an ACL"
like "$(cat "$T/body")" "outside the private networks" "the body says why"
code=$(nsx curl -s -o /dev/null -w '%{http_connect}' -p --interface 198.51.100.7 \
	-x "http://198.51.100.7:$port" "https://127.0.0.1:443/")
is "$code" 403 "and so does its CONNECT"

# the limited server: three refusals (1 + burst 2) as 403, then 429
codes=""
for _ in 1 2 3 4 5; do
	codes="$codes $(nsx curl -s -o /dev/null -w '%{http_code}' --interface 198.51.100.7 \
		-x "http://198.51.100.7:$((port + 1))" "http://127.0.0.1:$oport/")"
done
is "$codes" " 403 403 403 429 429" "a refused client past its limit_req burst gets 429"
code=$(nsx curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$((port + 1))" \
	"http://127.0.0.1:$oport/")
is "$code" 200 "the loopback client on the same server keeps its own allowance"
like "$(grep 'limit' "$T/proxyd.log" | head -n 1)" "198\.51\.100\.7" \
	"the error log names the limited client"
