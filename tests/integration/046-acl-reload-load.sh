#!/usr/bin/env bash
# Reloading the policy under load: four clients send 300 requests in all (each curl
# invocation fetches 15 URLs, alternating the hosts old.test and new.test, on new and
# reused connections) while the set file is rewritten and SIGHUP sent three times. Every
# answer must be 200 or 403 as the old or the new policy says (no 5xx, no connection
# error, nothing else), every 200 the origin's body; afterwards the new policy applies.
. "$TESTLIB"
plan 7

start_origin o1
port=$(free_port_static)
printf 'old.test\n' >"$T/blocked.lst"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
set blocked domains file $T/blocked.lst;
upstream up { server 127.0.0.1:$o1_port; }
server {
	listen 127.0.0.1:$port;
	proxy_pass up;
	deny id=blocked dst in blocked;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
for _ in $(seq 1 100); do
	grep -q 'proxyd .* started' "$T/proxyd.log" && break
	sleep 0.05
done

# client N: 5 invocations x 15 URLs; one line per response: "CODE SIZE URL"
client() {
	local i j urls
	for i in 1 2 3 4 5; do
		urls=()
		for j in $(seq 1 15); do
			if [ $(((i + j) % 2)) -eq 0 ]; then
				urls+=(-o /dev/null "http://old.test:$port/?c=$1&i=$i&j=$j")
			else
				urls+=(-o /dev/null "http://new.test:$port/?c=$1&i=$i&j=$j")
			fi
		done
		curl -s --max-time 20 --resolve "old.test:$port:127.0.0.1" \
			--resolve "new.test:$port:127.0.0.1" \
			-w '%{http_code} %{size_download} %{url_effective}\n' "${urls[@]}"
		echo "rc=$?"
	done >"$T/client-$1.out" 2>&1
}
cpids=""
for c in 1 2 3 4; do
	client "$c" &
	cpids="$cpids $!"
done
# flip the set while the clients run: new, old, new (each written at once with mv)
for set in new.test old.test new.test; do
	sleep 0.3
	printf '%s\n' "$set" >"$T/blocked.lst.new"
	mv "$T/blocked.lst.new" "$T/blocked.lst"
	kill -HUP "$PROXYD_PID"
done
for p in $cpids; do wait "$p"; done

cat "$T"/client-*.out >"$T/all.out"
is "$(grep -c '^[0-9][0-9][0-9] ' "$T/all.out")" 300 "300 responses"
is "$(grep -c '^rc=0$' "$T/all.out")" 20 "every curl invocation exited 0 (no connection error)"
bad=$(grep '^[0-9][0-9][0-9] ' "$T/all.out" | grep -vE '^(200|403) ')
is "$bad" "" "every response is 200 or 403 (no 5xx, no 000)"
osize=$(curl -s -o /dev/null -w "%{size_download}" "http://127.0.0.1:$o1_port/")
bad200=$(grep '^200 ' "$T/all.out" | grep -v "^200 $osize ")
is "$bad200" "" "every 200 carries the origin's body"
diag "answers: $(awk '/^[0-9]/ { split($3, u, "[/:]"); n[$1 " " u[4]]++ } END { for (k in n) printf "%s=%d ", k, n[k] }' "$T/all.out")"
diag "reloads logged: $(grep -c 'configuration generation [0-9]* loaded' "$T/proxyd.log")"

like "$(grep -c 'configuration generation [0-9]* loaded' "$T/proxyd.log")" '^3$' \
	"three reloads took effect"
grep -q '^403 .*old\.test' "$T/all.out" && grep -q '^200 .*old\.test' "$T/all.out" &&
	grep -q '^403 .*new\.test' "$T/all.out" && grep -q '^200 .*new\.test' "$T/all.out" ||
	diag "note: the load did not see both policies for both hosts (reloads outside the load window)"
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $1" "http://127.0.0.1:$port/"; }
codes() { for _ in 1 2 3 4 5 6 7 8 9 10; do code "$1"; echo; done | sort -u | tr -d '\n'; }
for _ in $(seq 1 50); do
	[ "$(codes new.test)" = 403 ] && break
	sleep 0.1
done
is "$(codes new.test)" 403 "after the reloads: new.test denied on every new connection"
is "$(codes old.test)" 200 "after the reloads: old.test served"
