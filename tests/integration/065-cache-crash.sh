#!/usr/bin/env bash
# The cache survives kill -9: two client loops store many distinct URLs (small bodies and
# streamed ones of over a megabyte, max_size small enough that eviction runs too) while
# the daemon is killed with SIGKILL five times at random moments. After each kill the
# environment verifies clean (proxyd-cache verify, daemon down), the restarted daemon
# opens the cache at once (no rebuild scan; the time to the first hit is only reported),
# verifies clean while it runs, and serves entries stored before the crash. Every body
# received complete with status 200, hit or miss, is the origin's body for its URL: each
# URL asks /bytes/N for a size N of its own, so a body mixed up with another entry's, or
# truncated, or with a chunk missing or misplaced, cannot match.
. "$TESTLIB"
plan 21

PC="$(dirname "$PROXYD")/../cache/proxyd-cache"
[ -x "$PC" ] || PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"
start_origin o1
mkdir -p "$T/cache"
port=$(free_ports 1)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
cache c { path $T/cache; max_size 12m; max_object_size 2m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass app; cache c; }
CONF
B="http://127.0.0.1:$port"

# the origin's body pattern (tests/origin/origin.c: 'a' + offset % 26), 2 MiB of it
yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c $((2 * 1024 * 1024)) >"$T/pattern"

# size of the body of request number id: one size per id, a fourth of them large
size_of() {
	case $(($1 % 4)) in
	0) echo $((1200000 + $1)) ;;
	1) echo $((1000 + $1)) ;;
	2) echo $((70000 + $1)) ;;
	*) echo $((300000 + $1)) ;;
	esac
}
url_of() { echo "$B/bytes/$(size_of "$1")?cc=max-age%3D3600&id=$1"; }

# check ID FILE HEADERS: a body received complete must be the pattern's first N bytes.
# Appends "id xcache" to $T/served, or the mismatch to $T/bad.
check() {
	local n xc
	n=$(size_of "$1")
	xc=$(tr -d '\r' <"$3" | sed -n 's/^X-Cache: //p' | tail -n 1)
	if [ "$(stat -c %s "$2")" = "$n" ] && cmp -s -n "$n" "$2" "$T/pattern"; then
		echo "$1 $xc" >>"$T/served"
	else
		echo "id $1 ($xc): $(stat -c %s "$2") bytes, want $n: $(head -c 40 "$2")" >>"$T/bad"
	fi
}

# fetch ID TAG: one request; a complete 200 is checked, anything else (the daemon was
# killed under it) only counted.
fetch() {
	local code
	code=$(curl -s -m 20 -o "$T/body.$2" -D "$T/head.$2" -w '%{http_code}' "$(url_of "$1")")
	if [ $? -eq 0 ] && [ "$code" = 200 ]; then
		check "$1" "$T/body.$2" "$T/head.$2"
	else
		echo "$1 $code" >>"$T/cut"
	fi
}

# loader L ROUND: at most 150 requests for new ids until $T/stop appears
loader() {
	local i id
	for i in $(seq 0 149); do
		[ -e "$T/stop" ] && return 0
		id=$(($2 * 1000 + $1 * 300 + i))
		fetch "$id" "l$1"
		echo "$id" >>"$T/ids"
	done
}

: >"$T/served"
: >"$T/bad"
: >"$T/cut"
: >"$T/ids"
hits_after_restart=0
for round in 1 2 3 4 5; do
	t0=$(date +%s%N)
	start_proxyd "$T/proxyd.conf" "$port"
	# time to the first response from the cache (a hit on an id stored before), reported
	first=""
	if [ -s "$T/served" ]; then
		# not the last one: its commit may not have been reached before the kill
		old=$(grep ' MISS$' "$T/served" | tail -n 20 | head -n 1 | cut -d' ' -f1)
		for _ in $(seq 1 100); do
			x=$(curl -s -m 5 -o /dev/null -D - "$(url_of "${old:-0}")" |
				tr -d '\r' | sed -n 's/^X-Cache: //p')
			[ -n "$x" ] && break
			sleep 0.05
		done
		first="$(((($(date +%s%N) - t0) / 1000000))) ms to the first response ($x)"
	fi
	diag "round $round: started${first:+, $first}"
	unlike "$(cat "$T/proxyd.log")" 'serving uncached' "round $round: the cache opens after the restart"
	out=$("$PC" -d "$T/cache" verify 2>&1)
	is "$out" ok "round $round: verify clean while the restarted daemon runs"
	# ids stored before the crash are served again: from the cache, and correct
	if [ -s "$T/served" ]; then
		h0=$(grep -c ' HIT$' "$T/served")
		# twenty of the last sixty stored: older ones may have been evicted since
		for id in $(grep ' MISS$' "$T/served" | tail -n 60 | cut -d' ' -f1 |
			shuf -n 20 --random-source="$T/pattern"); do
			fetch "$id" r
		done
		h=$(($(grep -c ' HIT$' "$T/served") - h0))
		hits_after_restart=$((hits_after_restart + h))
		diag "round $round: $h of 20 earlier ids were hits"
	fi
	rm -f "$T/stop"
	loader 1 "$round" &
	l1=$!
	loader 2 "$round" &
	l2=$!
	# a random moment within 0.5 to 2.5 seconds of writes
	sleep "$((RANDOM % 2 + 0)).$((RANDOM % 10))5"
	sleep 0.5
	kill -9 "$PROXYD_PID"
	wait "$PROXYD_PID" 2>/dev/null
	PIDS=${PIDS/ $PROXYD_PID/}
	touch "$T/stop"
	wait "$l1" "$l2"
	out=$("$PC" -d "$T/cache" verify 2>&1)
	is "$out" ok "round $round: verify clean after kill -9"
	sed -i 's/serving uncached/(seen before round '"$round"')/' "$T/proxyd.log"
done
start_proxyd "$T/proxyd.conf" "$port"
for id in $(shuf -n 40 --random-source="$T/pattern" "$T/ids"); do
	fetch "$id" f
done
is "$("$PC" -d "$T/cache" verify 2>&1)" ok "verify clean at the end, daemon running"
stats=$("$PC" -d "$T/cache" stats)
bytes=$(printf '%s\n' "$stats" | sed -n 's/^bytes //p')
ok "$([ "$bytes" -le $((12 * 1024 * 1024)) ]; echo $?)" "the accounted bytes within max_size ($bytes)"
nserved=$(wc -l <"$T/served")
ncut=$(wc -l <"$T/cut")
diag "$nserved complete responses ($(grep -c ' HIT$' "$T/served") hits), $ncut cut by the kills"
ok "$([ "$nserved" -ge 100 ]; echo $?)" "a write-heavy load: at least 100 complete responses ($nserved)"
ok "$([ "$hits_after_restart" -ge 1 ]; echo $?)" \
	"entries stored before a kill are served after the restart ($hits_after_restart hits)"
is "$(head -n 5 "$T/bad")" "" "every complete body, hit or miss, is the origin's for its URL"
stop_proxyd >"$T/stop.rc"
is "$(cat "$T/stop.rc")" 0 "proxyd exits cleanly at the end"
