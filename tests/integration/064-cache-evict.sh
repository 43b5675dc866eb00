#!/usr/bin/env bash
# Cache size bound and eviction through the real daemon: a cache with max_size 2m is
# filled with 60 distinct 100 KiB objects (three times its size) while a few hot URLs are
# requested again and again. After the fill the accounted bytes (proxyd-cache stats) are
# within max_size, the data file within the documented map bound (max_size * 1.5 + 64 MiB,
# and here, with one client, within 2 * max_size), the hot objects are still hits and the oldest cold ones
# are gone; the environment verifies clean. See doc/HACKING.md, "Cache eviction is CLOCK
# over insertion order".
. "$TESTLIB"
plan 10

PC="$(dirname "$PROXYD")/../cache/proxyd-cache"
[ -x "$PC" ] || PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"
start_origin o1
mkdir -p "$T/cache"
port=$(free_ports 1)
MAX=$((2 * 1024 * 1024))
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
cache small { path $T/cache; max_size $MAX; max_object_size 200k; }
upstream app { server 127.0.0.1:$o1_port; keepalive 4; }
server { listen 127.0.0.1:$port; proxy_pass app; cache small; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
xc() { curl -s -m 10 -D - -o /dev/null "$@" | tr -d '\r' | sed -n 's/^X-Cache: //p'; }
stat_of() { "$PC" -d "$T/cache" stats | sed -n "s/^$1 //p"; }
url() { echo "$B/bytes/102400?cc=max-age%3D600&obj=$1"; }
# cached URL: a hit within a few seconds (the writer thread commits; bounded wait)
cached() {
	for _ in $(seq 1 50); do
		[ "$(xc -H 'Cache-Control: only-if-cached' "$1")" = HIT ] && return 0
		sleep 0.1
	done
	return 1
}

# three hot objects, stored first: the oldest in insertion order, so only their hits keep
# them (without the clock they would be the first to go)
for h in hot1 hot2 hot3; do
	curl -s -m 10 -o /dev/null "$(url "$h")"
done
hot_ok=0
for h in hot1 hot2 hot3; do
	cached "$(url "$h")" && hot_ok=$((hot_ok + 1))
done
is "$hot_ok" 3 "the hot objects are stored"

max_bytes=0
for i in $(seq 1 60); do
	curl -s -m 10 -o /dev/null "$(url "cold$i")"
	if [ $((i % 4)) -eq 0 ]; then # the hot set is used throughout the fill
		for h in hot1 hot2 hot3; do curl -s -m 10 -o /dev/null "$(url "$h")"; done
	fi
	if [ $((i % 10)) -eq 0 ]; then
		sleep 0.2
		b=$(stat_of bytes)
		[ "${b:-0}" -gt "$max_bytes" ] && max_bytes=$b
	fi
done
sleep 0.5
bytes=$(stat_of bytes)
entries=$(stat_of entries)
diag "after the fill: $entries entries, $bytes accounted bytes (max_size $MAX); most seen $max_bytes"
ok "$([ "$bytes" -le "$MAX" ] && [ "$max_bytes" -le "$MAX" ]; echo $?)" \
	"the accounted bytes stay within max_size (sampled during the fill)"
ok "$([ "$bytes" -ge $((MAX / 2)) ]; echo $?)" "and the cache is used (at least half full: $bytes)"
ok "$([ "$entries" -lt 63 ] && [ "$entries" -gt 4 ]; echo $?)" \
	"some of the 63 objects were evicted ($entries entries left)"
fsize=$(stat -c %s "$T/cache/data.mdb")
diag "data.mdb: $fsize bytes"
ok "$([ "$fsize" -le $((MAX * 3 / 2 + 64 * 1024 * 1024)) ]; echo $?)" \
	"data.mdb within the map bound (max_size * 1.5 + 64 MiB)"
# one sequential client keeps write batches small: the file's high-water mark is then
# max_size plus about one batch (HACKING.md: the size bound)
ok "$([ "$fsize" -le $((MAX * 2)) ]; echo $?)" "and in practice within 2 * max_size ($fsize)"

hot_ok=0
for h in hot1 hot2 hot3; do
	[ "$(xc "$(url "$h")")" = HIT ] && hot_ok=$((hot_ok + 1))
done
is "$hot_ok" 3 "the hot objects, used during the fill, survive"
cold_gone=0
for i in 1 2 3 4 5; do
	[ "$(xc -H 'Cache-Control: only-if-cached' "$(url "cold$i")")" = HIT ] ||
		cold_gone=$((cold_gone + 1))
done
is "$cold_gone" 5 "the five oldest cold objects were evicted"
cached "$(url cold60)"
ok $? "the newest object is there"
is "$("$PC" -d "$T/cache" verify)" ok "proxyd-cache verify: clean"
