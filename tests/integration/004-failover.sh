#!/usr/bin/env bash
# Upstream failures: a dead peer is skipped, all peers dead gives 502, a read timeout and
# a connect timeout give 504, a reset mid-body truncates the client's transfer, and proxyd
# keeps serving through all of it.
. "$TESTLIB"
plan 16

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

start_origin live1
start_origin live2
dead=$(dead_port)
dead2=$(dead_port)
dead3=$(dead_port)

# An origin that listens with a backlog of 1 and never accepts: once its accept queue is
# full, a connect() to it hangs until proxy_connect_timeout.
have_noaccept=0
if "$ORIGIN" -h 2>&1 | grep -q -- '-N'; then
	have_noaccept=1
	start_origin blackhole -N
	bh_upstream="upstream bh { server 127.0.0.1:$blackhole_port; }"
else
	# keep the config valid: point the upstream at a dead port (unused below)
	bh_upstream="upstream bh { server 127.0.0.1:$dead3; }"
fi

port_mix=$(free_port_static)
port_dead=$(free_port_static)
port_one=$(free_port_static)
port_bh=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream mix {
	server 127.0.0.1:$dead;
	server 127.0.0.1:$live1_port;
	server 127.0.0.1:$live2_port;
	keepalive 8;
}
upstream alldead { server 127.0.0.1:$dead2; server 127.0.0.1:$dead3; }
upstream one { server 127.0.0.1:$live1_port; keepalive 8; }
$bh_upstream
server { listen 127.0.0.1:$port_mix; proxy_pass mix; }
server { listen 127.0.0.1:$port_dead; proxy_pass alldead; }
server { listen 127.0.0.1:$port_one; proxy_pass one; proxy_read_timeout 1s; }
server { listen 127.0.0.1:$port_bh; proxy_pass bh; proxy_connect_timeout 1s; }
CONF
start_proxyd "$T/proxyd.conf" "$port_mix"

# --- one dead peer among three --------------------------------------------------------------
# the body is the origin's UUID and a newline
for i in $(seq 1 20); do
	curl -s -w '%{http_code}\n' "http://127.0.0.1:$port_mix/" | paste -sd " "
done >"$T/mix.out"
is "$(grep -c ' 200$' "$T/mix.out")" 20 "one dead peer of three: 20 requests all get 200"
others=$(grep -v -e "^$live1_uuid 200\$" -e "^$live2_uuid 200\$" "$T/mix.out" | head -3)
is "$others" "" "every answer comes from one of the live peers"
n1=$(grep -c "^$live1_uuid " "$T/mix.out")
n2=$(grep -c "^$live2_uuid " "$T/mix.out")
diag "live1 answered $n1, live2 answered $n2"
ok $((n1 > 0 && n2 > 0 ? 0 : 1)) "both live peers get requests ($n1 + $n2)"

# --- all peers dead ----------------------------------------------------------------------------
out=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_dead/")
is "$out" 502 "all peers dead: 502"
out=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_dead/")
is "$out" 503 "all peers dead, again (peers marked down): 503"

# --- read timeout --------------------------------------------------------------------------------
t0=$(now_ms)
out=$(curl -s -m 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_one/hang")
el=$(($(now_ms) - t0))
is "$out" 504 "/hang with proxy_read_timeout 1s: 504"
diag "/hang answered after $el ms"
ok $((el >= 900 && el <= 4000 ? 0 : 1)) "the 504 comes after about 1s ($el ms)"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_one/")" 200 \
	"after a read timeout, the same upstream serves again"

# --- reset mid-body ----------------------------------------------------------------------------------
# The origin announces 2000 bytes, sends 1000, waits until they are acknowledged, then
# resets. What proxyd received (the head and 1000 bytes) should reach the client, which
# then sees the connection close short of Content-Length: curl's "partial file" (18).
out=$(curl -s -m 20 -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$port_one/reset/1000")
rc=$?
diag "/reset/1000: curl exit $rc, '$out'"
ok $((rc != 0 ? 0 : 1)) "/reset/1000: the client sees a failed transfer (curl exit $rc)"
is "$rc" 18 "/reset/1000: curl reports a partial file"
is "$out" "200 1000" "/reset/1000: the head and the 1000 bytes sent before the reset reach the client"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_one/")" 200 \
	"after a reset, the same upstream serves again"
out=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_mix/bytes/100000")
is "$out" 200 "after a reset, proxyd serves other servers too"

# --- connect timeout -------------------------------------------------------------------------------------
if [ "$have_noaccept" = 1 ]; then
	fill_accept_queue "$blackhole_port"
	t0=$(now_ms)
	out=$(curl -s -m 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_bh/")
	el=$(($(now_ms) - t0))
	is "$out" 504 "connect to a peer that never accepts, proxy_connect_timeout 1s: 504"
	diag "connect timeout answered after $el ms"
	ok $((el >= 900 && el <= 4000 ? 0 : 1)) "the 504 comes after about 1s ($el ms)"
else
	diag "origin has no -N (listen, never accept): connect timeout not tested"
	echo "ok $((TAP_N + 1)) # SKIP origin lacks -N"
	echo "ok $((TAP_N + 2)) # SKIP origin lacks -N"
	TAP_N=$((TAP_N + 2))
fi

is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_mix/")" 200 "proxyd still serves"
