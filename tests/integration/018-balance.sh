#!/usr/bin/env bash
# Balancing methods and server flags through the real daemon (#3): ip_hash keeps a client
# on one origin, least_conn avoids an origin with requests hanging on it, a backup answers
# once the primaries are down and not before, a `down` server never gets a request, hash
# keeps a key on one origin and spreads keys, least_time avoids a slow origin, and a
# server at its max_conns is refused with 503 connection_limit_reached.
. "$TESTLIB"
plan 21

for n in h1 h2 h3 l1 l2 bk pr sb d1 d2 k1 k2 k3 c1 c2 c3 t1 t2 m1; do
	start_origin $n
done
dead1=$(dead_port)
dead2=$(dead_port)
while [ "$dead2" = "$dead1" ]; do dead2=$(dead_port); done

port_ih=$(free_port_static)
port_lc=$(free_port_static)
port_bk=$(free_port_static)
port_sb=$(free_port_static)
port_dn=$(free_port_static)
port_hk=$(free_port_static)
port_ch=$(free_port_static)
port_lt=$(free_port_static)
port_mc=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream ih {
	ip_hash;
	server 127.0.0.1:$h1_port;
	server 127.0.0.1:$h2_port;
	server 127.0.0.1:$h3_port;
}
upstream lc {
	balance least_conn;
	server 127.0.0.1:$l1_port;
	server 127.0.0.1:$l2_port;
}
upstream bk {
	server 127.0.0.1:$dead1;
	server 127.0.0.1:$dead2;
	server 127.0.0.1:$bk_port backup;
}
upstream sb {
	balance random two;
	server 127.0.0.1:$pr_port;
	server 127.0.0.1:$sb_port backup;
}
upstream dn {
	balance round_robin;
	server 127.0.0.1:$d1_port;
	server 127.0.0.1:$d2_port down;
}
upstream hk {
	hash \$arg_user;
	server 127.0.0.1:$k1_port;
	server 127.0.0.1:$k2_port;
	server 127.0.0.1:$k3_port;
}
upstream ch {
	balance hash "uri:\$request_uri" consistent;
	server 127.0.0.1:$c1_port;
	server 127.0.0.1:$c2_port;
	server 127.0.0.1:$c3_port;
}
upstream lt {
	balance least_time header;
	server 127.0.0.1:$t1_port;
	server 127.0.0.1:$t2_port;
}
upstream mc {
	server 127.0.0.1:$m1_port max_conns=1;
}
server { listen 127.0.0.1:$port_ih; proxy_pass ih; }
server { listen 127.0.0.1:$port_mc; proxy_pass mc; }
server { listen 127.0.0.1:$port_hk; proxy_pass hk; }
server { listen 127.0.0.1:$port_ch; proxy_pass ch; }
server { listen 127.0.0.1:$port_lt; proxy_pass lt; }
server { listen 127.0.0.1:$port_lc; proxy_pass lc; }
server { listen 127.0.0.1:$port_bk; proxy_pass bk; }
server { listen 127.0.0.1:$port_sb; proxy_pass sb; }
server { listen 127.0.0.1:$port_dn; proxy_pass dn; }
CONF
start_proxyd "$T/proxyd.conf" "$port_ih"
for p in $port_mc $port_lc $port_bk $port_sb $port_dn $port_hk $port_ch $port_lt; do
	wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"
done

# --- ip_hash: one client address, one origin ------------------------------------------------
for i in $(seq 1 20); do
	curl -s "http://127.0.0.1:$port_ih/"
done >"$T/ih.out"
is "$(wc -l <"$T/ih.out" | tr -d ' ')" 20 "ip_hash: 20 requests answered"
is "$(sort -u "$T/ih.out" | wc -l | tr -d ' ')" 1 "ip_hash: all 20 reach the same origin"
like "$(head -1 "$T/ih.out")" "^($h1_uuid|$h2_uuid|$h3_uuid)\$" "ip_hash: the origin is one of the three"

# --- least_conn: requests hanging on one origin steer new ones away -------------------------
# Three hanging requests split 2:1 (the second always goes to the idle origin); the origin
# with one of them is then the less loaded and must get every new request.
for i in 1 2 3; do
	curl -s -o /dev/null -m 5 "http://127.0.0.1:$port_lc/hang" &
	PIDS="$PIDS $!"
done
# origin active counts connections, the /stats one included
hang1=0 hang2=0
for _ in $(seq 1 100); do
	hang1=$(($(origin_stat "$l1_port" active) - 1))
	hang2=$(($(origin_stat "$l2_port" active) - 1))
	[ $((hang1 + hang2)) -ge 3 ] && break
	sleep 0.05
done
diag "hanging requests: l1 $hang1, l2 $hang2"
is "$((hang1 + hang2)):$((hang1 > hang2 ? hang1 : hang2))" "3:2" \
	"least_conn: three hanging requests split 2:1"
if [ "$hang1" -lt "$hang2" ]; then
	idle_uuid=$l1_uuid
else
	idle_uuid=$l2_uuid
fi
for i in $(seq 1 10); do
	curl -s -m 4 "http://127.0.0.1:$port_lc/"
done >"$T/lc.out"
is "$(grep -c "^$idle_uuid\$" "$T/lc.out")" 10 \
	"least_conn: all 10 new requests go to the less loaded origin"

# --- backup: used once both primaries are down ---------------------------------------------
for i in $(seq 1 6); do
	# the body is the origin's UUID and a newline
	curl -s -w '%{http_code}\n' "http://127.0.0.1:$port_bk/" | paste -sd " "
done >"$T/bk.out"
is "$(tail -5 "$T/bk.out" | grep -c "^$bk_uuid 200\$")" 5 \
	"backup: with both primaries down the backup answers 200"
like "$(head -1 "$T/bk.out")" "^$bk_uuid 200\$" \
	"backup: the first request fails over to the backup within itself"

# --- backup: not used while a primary is live ----------------------------------------------
for i in $(seq 1 20); do
	curl -s "http://127.0.0.1:$port_sb/"
done >"$T/sb.out"
is "$(grep -c "^$pr_uuid\$" "$T/sb.out")" 20 "backup: a live primary takes all 20 requests"
is "$(origin_stat "$sb_port" requests)" 1 "backup: the backup saw no request but /stats"

# --- down: never chosen --------------------------------------------------------------------
for i in $(seq 1 20); do
	curl -s "http://127.0.0.1:$port_dn/"
done >"$T/dn.out"
is "$(grep -c "^$d1_uuid\$" "$T/dn.out")" 20 "down: the other server takes all 20 requests"
is "$(origin_stat "$d2_port" requests)" 1 "down: the down server saw no request but /stats"

# --- hash $arg_user: one user, one origin; users spread --------------------------------------
for i in $(seq 1 10); do
	curl -s "http://127.0.0.1:$port_hk/?page=$i&user=alice"
done >"$T/hk.out"
got=$(grep -c -E "^($k1_uuid|$k2_uuid|$k3_uuid)\$" "$T/hk.out")
is "$got:$(sort -u "$T/hk.out" | wc -l | tr -d ' ')" "10:1" \
	"hash: 10 requests of one user, other arguments, reach one origin"
for i in $(seq 1 30); do
	curl -s "http://127.0.0.1:$port_hk/?user=u$i"
done >"$T/hk2.out"
n=$(sort -u "$T/hk2.out" | grep -c -E "^($k1_uuid|$k2_uuid|$k3_uuid)\$")
ok "$([ "$n" -ge 2 ] && echo 0 || echo 1)" "hash: 30 users spread over $n of 3 origins"

# --- hash $request_uri consistent: one URI, one origin ---------------------------------------
for i in $(seq 1 10); do
	curl -s "http://127.0.0.1:$port_ch/?same=1"
done >"$T/ch.out"
got=$(grep -c -E "^($c1_uuid|$c2_uuid|$c3_uuid)\$" "$T/ch.out")
is "$got:$(sort -u "$T/ch.out" | wc -l | tr -d ' ')" "10:1" \
	"hash consistent: 10 requests for one URI reach one origin"
for i in $(seq 1 30); do
	curl -s "http://127.0.0.1:$port_ch/?item=$i"
done >"$T/ch2.out"
n=$(sort -u "$T/ch2.out" | grep -c -E "^($c1_uuid|$c2_uuid|$c3_uuid)\$")
ok "$([ "$n" -ge 2 ] && echo 0 || echo 1)" "hash consistent: 30 URIs spread over $n of 3 origins"

# --- least_time: a slow answer steers later requests away ------------------------------------
# Fresh peers tie at zero, so the first request goes to one of them by round robin; it
# takes 300ms, and every later fast request must then go to the other origin.
slow=$(curl -s -m 5 "http://127.0.0.1:$port_lt/?delay=300")
like "$slow" "^($t1_uuid|$t2_uuid)\$" "least_time: the delayed request is answered"
for i in $(seq 1 10); do
	curl -s -m 4 "http://127.0.0.1:$port_lt/"
done >"$T/lt.out"
is "$(grep -c -v "^$slow\$" "$T/lt.out")" 10 "least_time: all 10 later requests avoid the slow origin"

# --- max_conns: the only server holds one request; the next one gets 503 ---------------------
# The held request is a delayed one (3s), so that it ends by itself and frees the server.
curl -s -o /dev/null -m 8 "http://127.0.0.1:$port_mc/?delay=3000" &
mc_pid=$!
# origin active counts connections, the /stats one included
for _ in $(seq 1 100); do
	[ "$(origin_stat "$m1_port" active)" -ge 2 ] && break
	sleep 0.05
done
curl -s -D "$T/mc.head" -o /dev/null "http://127.0.0.1:$port_mc/"
like "$(head -1 "$T/mc.head")" "^HTTP/1.1 503 " "max_conns: a second request gets 503"
like "$(tr -d '\r' <"$T/mc.head")" "Proxy-Status: proxyd; error=connection_limit_reached" \
	"max_conns: Proxy-Status says connection_limit_reached"
wait "$mc_pid"
is "$(curl -s -o /dev/null -w '%{http_code}' -m 4 "http://127.0.0.1:$port_mc/")" 200 \
	"max_conns: once the held request ends the server takes requests again"

# --- the config still checks, and proxyd runs through a reload ------------------------------
kill -HUP "$PROXYD_PID"
sleep 0.3
is "$(curl -s "http://127.0.0.1:$port_dn/")" "$d1_uuid" "after a reload, down still holds"
