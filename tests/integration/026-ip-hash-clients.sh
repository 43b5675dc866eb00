#!/usr/bin/env bash
# ip_hash with clients on many addresses (#3), bound with curl --interface (on Linux the
# whole of 127.0.0.0/8 is on lo). ip_hash keys an IPv4 client by its /24 (as nginx), so
#  (a) clients 127.0.0.2 .. 127.0.0.9, one /24, each stay on one origin and all share it;
#  (b) clients 127.0.1.1 .. 127.0.16.1, sixteen /24s, each stay on one origin across
#      repeated requests and new connections, and together they spread over more than one.
# A round_robin upstream over the same origins is the control: there one client does not
# stay on one origin, so the stickiness assertions can fail.
. "$TESTLIB"

REPEAT=6 # requests per client, each on a new connection

start_origin h1
start_origin h2
start_origin h3
start_origin h4
p_ih=$(free_port_static)
p_rr=$(free_port_static)
servers="server 127.0.0.1:$h1_port; server 127.0.0.1:$h2_port;
	server 127.0.0.1:$h3_port; server 127.0.0.1:$h4_port;"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream ih { ip_hash; $servers }
upstream rr { balance round_robin; $servers }
server { listen 127.0.0.1:$p_ih; proxy_pass ih; }
server { listen 127.0.0.1:$p_rr; proxy_pass rr; }
CONF
start_proxyd "$T/proxyd.conf" "$p_ih"
wait_port 127.0.0.1 "$p_rr" || bail "proxyd does not listen on $p_rr"

if ! curl -s -m 5 -o /dev/null --interface 127.0.1.1 "http://127.0.0.1:$p_rr/"; then
	skip_all "cannot bind a client to 127.0.1.1 (no 127.0.0.0/8 on lo)"
fi
plan 10

# the origin sees the bound address as the client's (X-Forwarded-For), so the test really
# exercises different client addresses
xff=$(curl -s -m 5 --interface 127.0.7.1 "http://127.0.0.1:$p_ih/headers" | tr -d '\r' |
	sed -n 's/^[Xx]-[Ff]orwarded-[Ff]or: *//p')
is "$xff" "127.0.7.1" "curl --interface 127.0.7.1 reaches proxyd from 127.0.7.1"

all="$h1_uuid|$h2_uuid|$h3_uuid|$h4_uuid"
# clients PORT ADDR...: for each address, REPEAT requests on new connections; prints one
# line per address: ADDR, the distinct origins it reached (comma separated), answers count
clients() {
	local port=$1 a i
	shift
	for a in "$@"; do
		for i in $(seq 1 "$REPEAT"); do
			curl -s -m 5 --interface "$a" "http://127.0.0.1:$port/"
		done >"$T/client-$a.out"
		echo "$a $(grep -E "^($all)\$" "$T/client-$a.out" | sort -u | paste -sd, -)" \
			"$(grep -c -E "^($all)\$" "$T/client-$a.out")"
	done
}
# sticky FILE: how many clients reached exactly one origin with all REPEAT answers
sticky() { awk -v n="$REPEAT" '$2 !~ /,/ && $3 == n' "$1" | wc -l | tr -d ' '; }
# origins FILE: how many distinct origins the clients reached together
origins() { cut -d' ' -f2 "$1" | tr ',' '\n' | sort -u | grep -c .; }

one24=""
for i in 2 3 4 5 6 7 8 9; do one24="$one24 127.0.0.$i"; done
many24=""
for i in $(seq 1 16); do many24="$many24 127.0.$i.1"; done

# --- (a) one /24 -----------------------------------------------------------------------------
clients "$p_ih" $one24 >"$T/a.txt"
sed 's/^/#   /' "$T/a.txt"
is "$(sticky "$T/a.txt")" 8 "ip_hash, one /24: each of 8 clients stays on one origin ($REPEAT requests each)"
is "$(origins "$T/a.txt")" 1 "ip_hash, one /24: all 8 clients share one origin"

# --- (b) sixteen /24s ------------------------------------------------------------------------
clients "$p_ih" $many24 >"$T/b.txt"
sed 's/^/#   /' "$T/b.txt"
is "$(sticky "$T/b.txt")" 16 "ip_hash, 16 /24s: each of 16 clients stays on one origin ($REPEAT requests each)"
n=$(origins "$T/b.txt")
ok "$([ "$n" -ge 2 ] && echo 0 || echo 1)" "ip_hash, 16 /24s: the clients spread over $n of 4 origins"
# the same clients later, on one keep-alive connection each: the same origins as before
moved=0
for a in $many24; do
	want=$(grep "^$a " "$T/b.txt" | cut -d' ' -f2)
	got=$(curl -s -m 5 --interface "$a" "http://127.0.0.1:$p_ih/" "http://127.0.0.1:$p_ih/" |
		sort -u | paste -sd, -)
	[ "$got" = "$want" ] || moved=$((moved + 1))
done
is "$moved" 0 "ip_hash, 16 /24s: asked again, no client has moved"

# --- control: round_robin does not stick ------------------------------------------------------
clients "$p_rr" $many24 >"$T/rr.txt"
s=$(sticky "$T/rr.txt")
ok "$([ "$s" -lt 16 ] && echo 0 || echo 1)" \
	"round_robin (control): not every client stays on one origin ($s of 16 do)"
is "$(origins "$T/rr.txt")" 4 "round_robin (control): the clients reach all 4 origins"

# the origins counted every proxied request: 1+1 probes, 8+16 clients x REPEAT for ip_hash,
# 16 x 2 asked again, 16 x REPEAT for round_robin, and each one's /stats
sum=0
for p in $h1_port $h2_port $h3_port $h4_port; do
	sum=$((sum + $(origin_stat "$p" requests)))
done
is "$((sum - 4))" "$((2 + 24 * REPEAT + 32 + 16 * REPEAT))" "the origins served every request"
like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
