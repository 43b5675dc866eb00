#!/usr/bin/env bash
# The demo: six origins behind proxyd answer in round-robin order, and weights hold.
. "$TESTLIB"
plan 5

servers=""
for i in 1 2 3 4 5 6; do
	start_origin o$i
	servers="$servers server 127.0.0.1:$ORIGIN_PORT;"
done
port=$(free_port)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream six { $servers keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass six; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

# 12 separate connections, as the demo's curl loop makes them
seq=""
for i in $(seq 1 12); do
	seq="$seq $(curl -s "http://127.0.0.1:$port/")"
done
first6=$(echo $seq | tr ' ' '\n' | head -6 | sort -u | wc -l)
is "$first6" 6 "the first six requests reach six different origins"
a=$(echo $seq | tr ' ' '\n' | head -6 | tr '\n' ' ')
b=$(echo $seq | tr ' ' '\n' | tail -6 | tr '\n' ' ')
is "$b" "$a" "the next six repeat the same order"
all=$(for i in 1 2 3 4 5 6; do eval echo "\$o${i}_uuid"; done | sort | tr '\n' ' ')
got=$(echo $seq | tr ' ' '\n' | head -6 | sort | tr '\n' ' ')
is "$got" "$all" "the UUIDs are the origins' own"

# weights 1:2:3 over 1200 requests on keep-alive connections: smooth WRR is exact
start_origin w1
start_origin w2
start_origin w3
port2=$(free_port)
cat >"$T/weights.conf" <<CONF
workers 2;
error_log stderr info;
upstream w {
	server 127.0.0.1:$w1_port weight=1;
	server 127.0.0.1:$w2_port weight=2;
	server 127.0.0.1:$w3_port weight=3;
	keepalive 8;
}
server { listen 127.0.0.1:$port2; proxy_pass w; }
CONF
kill "$PROXYD_PID"; wait "$PROXYD_PID" 2>/dev/null
start_proxyd "$T/weights.conf" "$port2"
urls=""
for i in $(seq 1 100); do urls="$urls http://127.0.0.1:$port2/"; done
for i in $(seq 1 12); do curl -s $urls; done >"$T/w.out"
c1=$(grep -c "$w1_uuid" "$T/w.out")
c2=$(grep -c "$w2_uuid" "$T/w.out")
c3=$(grep -c "$w3_uuid" "$T/w.out")
diag "weights 1:2:3 got $c1:$c2:$c3"
is "$((c1 + c2 + c3))" 1200 "1200 requests answered"
is "$c1:$c2:$c3" "200:400:600" "weights 1:2:3 give exactly 200:400:600"
