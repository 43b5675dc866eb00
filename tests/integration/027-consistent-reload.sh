#!/usr/bin/env bash
# hash $request_uri consistent keeps keys in place when a server goes (#3): 10,000
# distinct URIs over four origins, then a reload (SIGHUP, rewritten config) without one
# of them, then the same 10,000 URIs again. At most 1/4 + 5 points of the keys may move,
# and keys that were on the surviving origins must stay (at most 1% may move).
# The origin removed is the one with the fewest keys: the ring is built from the servers'
# addresses, and the ports are random, so one origin's share of the ring varies from run
# to run (about 0.5% of port sets give one origin more than 29.5%); the fewest never holds
# more than 1/4, so the bound can only be broken by keys that should not have moved.
# Plain `hash $request_uri` over the same origins and the same reload is the control: it
# moves most keys, so the bound on the consistent one means something.
. "$TESTLIB"
plan 12

KEYS=10000
export LC_ALL=C # sort and join must agree on the order
N=4

for i in 1 2 3 4; do
	start_origin o$i
done
p_ch=$(free_port_static)
p_hm=$(free_port_static)
while [ "$p_hm" = "$p_ch" ]; do p_hm=$(free_port_static); done

# mkconf ORIGIN_NUMBERS...: writes $T/proxyd.conf at once (rename), so that a reload never
# reads half a file
mkconf() {
	local s="" i p
	for i in "$@"; do
		eval "p=\$o${i}_port"
		s="$s server 127.0.0.1:$p;"
	done
	cat >"$T/proxyd.conf.new" <<CONF
workers 2;
error_log stderr info;
upstream ch { hash \$request_uri consistent; $s keepalive 8; }
upstream hm { hash \$request_uri; $s keepalive 8; }
server { listen 127.0.0.1:$p_ch; proxy_pass ch; }
server { listen 127.0.0.1:$p_hm; proxy_pass hm; }
CONF
	mv "$T/proxyd.conf.new" "$T/proxyd.conf"
}

# map PORT NAME: GET /k/1 .. /k/KEYS (4 curl runs in parallel, each on one keep-alive
# connection); writes $T/NAME.map, one line per key: KEY ORIGIN-NUMBER (0: no UUID answer)
map() {
	local port=$1 name=$2 j pids=""
	for j in 0 1 2 3; do
		seq $((j * KEYS / 4 + 1)) $(((j + 1) * KEYS / 4)) |
			sed "s|.*|url = \"http://127.0.0.1:$port/?k=&\"|" >"$T/$name.cfg$j"
		timeout 120 curl -s -m 100 -K "$T/$name.cfg$j" >"$T/$name.out$j" &
		pids="$pids $!"
	done
	# only these: a bare wait would wait for the origins and proxyd too
	wait $pids
	cat "$T/$name.out0" "$T/$name.out1" "$T/$name.out2" "$T/$name.out3" |
		sed -e "s/^$o1_uuid\$/1/" -e "s/^$o2_uuid\$/2/" -e "s/^$o3_uuid\$/3/" \
			-e "s/^$o4_uuid\$/4/" -e 's/^.*[^0-9].*$/0/' | nl -ba -w1 -s' ' >"$T/$name.map"
}

# wait_log REGEX: polls proxyd's error log for up to 5 s
wait_log() {
	for _ in $(seq 1 100); do
		grep -Eq -- "$1" "$T/proxyd.log" && return 0
		sleep 0.05
	done
	return 1
}

mkconf 1 2 3 4
start_proxyd "$T/proxyd.conf" "$p_ch"
wait_port 127.0.0.1 "$p_hm" || bail "proxyd does not listen on $p_hm"
wait_log 'proxyd .* started' || diag "no 'started' line in the log"

map "$p_ch" ch1
map "$p_hm" hm1
is "$(grep -c ' [1-4]$' "$T/ch1.map")" "$KEYS" "consistent, 4 origins: all $KEYS keys answered by an origin"
is "$(cut -d' ' -f2 "$T/ch1.map" | sort -u | paste -sd' ' -)" "1 2 3 4" \
	"consistent, 4 origins: the keys spread over all four"
# the victim: the origin with the fewest keys
v=$(cut -d' ' -f2 "$T/ch1.map" | sort | uniq -c | sort -n | awk 'NR == 1 { print $2 }')
onv=$(grep -c " $v\$" "$T/ch1.map")
eval "v_uuid=\$o${v}_uuid"
diag "consistent: origin $v has the fewest keys, $onv of $KEYS"
is "$(grep -c ' [1-4]$' "$T/hm1.map")" "$KEYS" "plain hash, 4 origins: all $KEYS keys answered by an origin"

# --- reload without origin v ---------------------------------------------------------------------
left=$(echo 1 2 3 4 | tr ' ' '\n' | grep -v "^$v\$" | paste -sd' ' -)
mkconf $left
kill -HUP "$PROXYD_PID"
wait_log 'configuration generation 2 loaded'
ok $? "the reload without origin $v is loaded"
# every worker has the new generation once keys of origin v stop reaching it on new
# connections (each curl is a new connection; workers 2)
probe=$(grep " $v\$" "$T/ch1.map" | head -20 | cut -d' ' -f1 |
	sed "s|.*|http://127.0.0.1:$p_ch/?k=&|")
gone=1
for _ in $(seq 1 50); do
	gone=0
	for _ in 1 2 3 4 5 6; do
		curl -s -m 5 $probe | grep -q "^$v_uuid\$" && gone=1
	done
	[ "$gone" -eq 0 ] && break
	sleep 0.1
done
is "$gone" 0 "after the reload no new connection reaches origin $v"

map "$p_ch" ch2
map "$p_hm" hm2
is "$(grep -c " [${left// /}]\$" "$T/ch2.map")" "$KEYS" "consistent, 3 origins: all $KEYS keys answered by the three left"

# moved A B: keys whose origin differs between maps A and B; survivors: of those that
# were not on origin v
moved() { join "$T/$1.map" "$T/$2.map" | awk '$2 != $3' | wc -l | tr -d ' '; }
moved_survivors() {
	join "$T/$1.map" "$T/$2.map" | awk -v v="$v" '$2 != v && $2 != $3' | wc -l | tr -d ' '
}
# join wants its input sorted as text
for m in ch1 ch2 hm1 hm2; do
	sort -k1,1 "$T/$m.map" >"$T/$m.sorted" && mv "$T/$m.sorted" "$T/$m.map"
done

mv_ch=$(moved ch1 ch2)
mv_ch_s=$(moved_survivors ch1 ch2)
limit=$((KEYS / N + KEYS * 5 / 100))
diag "consistent: $mv_ch of $KEYS keys moved ($onv were on origin $v), $mv_ch_s of the others"
ok "$([ "$mv_ch" -le "$limit" ] && echo 0 || echo 1)" \
	"consistent: $mv_ch of $KEYS keys moved, at most 1/$N + 5% ($limit)"
is "$((mv_ch - mv_ch_s))" "$onv" "consistent: every key of origin $v moved to a survivor"
ok "$([ "$mv_ch_s" -le $((KEYS / 100)) ] && echo 0 || echo 1)" \
	"consistent: keys on the surviving origins stayed ($mv_ch_s of $((KEYS - onv)) moved, at most 1%)"

mv_hm=$(moved hm1 hm2)
diag "plain hash: $mv_hm of $KEYS keys moved"
is "$(grep -c " [${left// /}]\$" "$T/hm2.map")" "$KEYS" "plain hash, 3 origins: all $KEYS keys answered by the three left"
ok "$([ "$mv_hm" -gt "$limit" ] && echo 0 || echo 1)" \
	"plain hash (control): $mv_hm of $KEYS keys moved, more than $limit"
like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
