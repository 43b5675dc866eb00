#!/usr/bin/env bash
# A cache file cut short under the running daemon costs clients nothing. LMDB reads
# data.mdb through a map, and a read of a page past the new end of the file is SIGBUS,
# which used to kill the daemon. Four 1 MiB objects are stored (hits), then data.mdb is
# truncated to 12 KiB (the two meta pages and a little more) with truncate(1). Every
# later request, for the stored URLs and for new ones, is a 200 with the origin's body
# (the origin counts them: none comes from the cache), the daemon keeps its PID, the
# error log names the cache and the fault exactly once, nothing is stored any more, and
# /metrics says the cache is down (proxyd_cache_up 0).
# A reload with the cut file in place reopens it (extended at open): no crash, every
# answer right. Then the operator's way back: the cache's files are removed and a reload
# (SIGHUP) reopens the path, and objects are stored and hit again. The daemon exits
# cleanly.
. "$TESTLIB"
plan 18

start_origin o1
mkdir -p "$T/cache"
read -r port adm <<<"$(free_ports 2)"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
admin { listen 127.0.0.1:$adm; }
cache c { path $T/cache; max_size 64m; max_object_size 4m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass app; cache c; }
CONF
B="http://127.0.0.1:$port"
N=$((1024 * 1024))
yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c "$N" >"$T/pattern"

# get ID [curl args]: a 200 whose body is the origin's 1 MiB pattern; prints the X-Cache
# word (or "none"), or "bad CODE SIZE"
get() {
	local id=$1 code x
	shift
	code=$(curl -s -m 10 -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" \
		"$B/bytes/$N?cc=max-age%3D3600&id=$id")
	if [ "$code" = 200 ] && [ "$(stat -c %s "$T/body")" = "$N" ] &&
		cmp -s "$T/body" "$T/pattern"; then
		x=$(tr -d '\r' <"$T/head" | sed -n 's/^X-Cache: //p')
		echo "${x:-none}"
	else
		echo "bad $code $(stat -c %s "$T/body" 2>/dev/null)"
	fi
}

# stored ID: wait (bounded) until ID is a hit; prints the last answer
stored() {
	local r
	for _ in $(seq 1 50); do
		r=$(get "$1" -H 'Cache-Control: only-if-cached')
		[ "$r" = HIT ] && break
		sleep 0.1
	done
	echo "$r"
}

# cache_up: the proxyd_cache_up sample of cache c on the admin endpoint
cache_up() {
	curl -s -m 5 "http://127.0.0.1:$adm/metrics" | sed -n 's/^proxyd_cache_up{cache="c"} //p'
}

start_proxyd "$T/proxyd.conf" "$port"
pid=$PROXYD_PID
started() { cut -d' ' -f22 "/proc/$pid/stat" 2>/dev/null; } # its start time, in ticks
t0=$(started)
bad=0
for id in 1 2 3 4; do
	r=$(get "$id")
	[ "$r" = MISS ] || { bad=$((bad + 1)); diag "store $id: $r"; }
done
is "$bad" 0 "four 1 MiB objects fetched through the cache"
hits=""
for id in 1 2 3 4; do
	hits="$hits $(stored "$id")"
done
is "$hits" " HIT HIT HIT HIT" "all four are stored"
before=$(stat -c %s "$T/cache/data.mdb")
ok "$([ "$before" -gt $((4 * N)) ]; echo $?)" "data.mdb holds them ($before bytes)"
is "$(cache_up)" 1 "/metrics: proxyd_cache_up 1"

truncate -s 12288 "$T/cache/data.mdb"
r0=$(origin_stat "$o1_port" requests)
answers=""
for id in 1 2 3 4 5 6 1 2; do
	answers="$answers $(get "$id")"
done
is "$answers" " MISS MISS MISS MISS MISS MISS MISS MISS" \
	"after the truncation: stored and new URLs, every answer the origin's 200 and body"
r1=$(origin_stat "$o1_port" requests)
# the second /stats request counts itself
is "$((r1 - r0 - 1))" 8 "the origin answered all eight (none came from the cut file)"
kill -0 "$pid" 2>/dev/null
ok $? "the daemon lives"
is "$(started)" "$t0" "the same process (PID $pid, same start time)"
is "$(grep -c 'bus error reading data.mdb' "$T/proxyd.log")" 1 "the fault is logged once"
like "$(grep 'bus error reading data.mdb' "$T/proxyd.log")" "cache $T/cache: .*cache disabled" \
	"the log line names the cache directory"
is "$(get 5 -H 'Cache-Control: only-if-cached' | cut -c1-7)" "bad 504" \
	"nothing is stored after the fault"
is "$(cache_up)" 0 "/metrics: proxyd_cache_up 0 (running uncached)"

# a reload with the cut file still there reopens it: the file is extended with zero pages
# at open, so whether the open refuses it (corrupt) or not, nothing faults or crashes
kill -HUP "$pid"
wait_grep "$T/proxyd.log" 'generation 2 loaded' || diag "no generation 2 after 5 s"
answers=""
for id in 1 2 3 4 5 6; do
	answers="$answers $(get "$id" | cut -c1-3)"
done
unlike "$answers" bad "a reload with the cut file in place: every answer right ($answers)"
diag "$(grep -E 'cache.*(uncached|corrupt)' "$T/proxyd.log" | tail -n 1)"

# the way back: new files, a reload
rm -f "$T/cache/data.mdb" "$T/cache/lock.mdb"
kill -HUP "$pid"
wait_grep "$T/proxyd.log" 'generation 3 loaded' || diag "no generation 3 after 5 s"
r=$(get 7)
r="$r $(stored 7)"
is "$r" "MISS HIT" "after removing the files and a reload, objects are stored and hit again"
is "$(cache_up)" 1 "/metrics: proxyd_cache_up 1 again"
is "$(grep -c 'bus error reading data.mdb' "$T/proxyd.log")" 1 "no other fault"
kill -0 "$pid" 2>/dev/null
ok $? "the daemon still lives"
stop_proxyd >"$T/stop.rc"
is "$(cat "$T/stop.rc")" 0 "proxyd exits cleanly"
