#!/usr/bin/env bash
# An unusable cache never costs a client anything. (a) A full file system: the cache
# directory is a 3 MiB tmpfs (root and mount permitting; otherwise a 3 MiB file size
# limit, ulimit -f, which fails writes the same way; NO_TMPFS=1 forces it) under a cache with max_size 64m,
# filled with 8 MB of distinct objects; and a map far smaller than max_size
# (PROXYD_TEST_CACHE_MAP_SIZE, --enable-test-hooks builds), so that LMDB hits
# MDB_MAP_FULL. Every response is a 200 with the origin's body, the daemon lives, says
# the cache is full, evicts and keeps storing new objects, and the environment verifies
# clean. (b) A missing directory and (c) a corrupt environment (random bytes over the
# whole file, over the meta pages only, over every page but the meta pages) at start:
# logged, and the servers serve uncached. A data file truncated while the daemon runs
# (SIGBUS) is 085-cache-sigbus.sh.
. "$TESTLIB"
plan 21

PC="$(dirname "$PROXYD")/../cache/proxyd-cache"
[ -x "$PC" ] || PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"
start_origin o1
yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c $((1024 * 1024)) >"$T/pattern"

# get URL SIZE [curl args]: a 200 whose body is the origin's pattern of SIZE bytes;
# prints the X-Cache word (or "none") on success, "bad CODE SIZE" otherwise
get() {
	local u=$1 n=$2 code
	shift 2
	code=$(curl -s -m 10 -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" "$u")
	if [ "$code" = 200 ] && [ "$(stat -c %s "$T/body")" = "$n" ] &&
		cmp -s -n "$n" "$T/body" "$T/pattern"; then
		x=$(tr -d '\r' <"$T/head" | sed -n 's/^X-Cache: //p')
		echo "${x:-none}"
	else
		echo "bad $code $(stat -c %s "$T/body")"
	fi
}

# fill NAME PORT: 40 distinct 200 KB objects; every answer must be right. Then the
# newest object is asked for again. Five checks.
fill() {
	local name=$1 B="http://127.0.0.1:$2" bad=0 i r
	for i in $(seq 1 40); do
		r=$(get "$B/bytes/$((200000 + i))?cc=max-age%3D600&i=$i" $((200000 + i)))
		case $r in bad*) bad=$((bad + 1)); diag "$name: object $i: $r" ;; esac
	done
	is "$bad" 0 "$name: 40 x 200 KB through a full cache: every answer a 200 with the origin's body"
	kill -0 "$PROXYD_PID" 2>/dev/null
	ok $? "$name: the daemon lives"
	like "$(cat "$T/proxyd.log")" "cache $3: full \(" "$name: the full cache is logged"
	for _ in $(seq 1 50); do # the writer thread commits: a bounded wait
		r=$(get "$B/bytes/200040?cc=max-age%3D600&i=40" 200040 -H 'Cache-Control: only-if-cached')
		[ "$r" = HIT ] && break
		sleep 0.1
	done
	is "$r" HIT "$name: eviction made room: the newest object is stored"
	is "$("$PC" -d "$3" verify 2>&1)" ok "$name: verify clean"
}

# (a) a small file system
mkdir -p "$T/small"
mounted=""
if [ -z "${NO_TMPFS:-}" ] && [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=3m tmpfs "$T/small" 2>/dev/null; then
	mounted=1
	trap 'for p in $PIDS; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
		umount "$T/small" 2>/dev/null || umount -l "$T/small"; cleanup' EXIT
	diag "(a) ran on a 3 MiB tmpfs"
else
	diag "(a) ran with a 3 MiB file size limit (ulimit -f): no tmpfs mount here"
fi
read -r pa pm pb <<<"$(free_ports 3)"
cat >"$T/small.conf" <<CONF
workers 2;
error_log stderr info;
cache c { path $T/small; max_size 64m; max_object_size 1m; }
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$pa; proxy_pass app; cache c; }
CONF
if [ -n "$mounted" ]; then
	start_proxyd "$T/small.conf" "$pa"
else
	# SIGXFSZ ignored before exec stays ignored: writes past the limit fail with EFBIG
	(trap '' XFSZ; ulimit -f 3072; exec "$PROXYD" -f -c "$T/small.conf") \
		>>"$T/proxyd.out" 2>>"$T/proxyd.log" &
	PROXYD_PID=$!
	PIDS="$PIDS $PROXYD_PID"
	wait_port 127.0.0.1 "$pa" || bail "proxyd did not start"
fi
fill "small file system" "$pa" "$T/small"
stop_proxyd >/dev/null
PIDS=${PIDS/ $PROXYD_PID/}

# (a) a map far smaller than max_size: MDB_MAP_FULL
mkdir -p "$T/map"
sed "s|path $T/small;|path $T/map;|; s|:$pa;|:$pm;|" "$T/small.conf" >"$T/map.conf"
: >"$T/proxyd.log"
PROXYD_TEST_CACHE_MAP_SIZE=2097152 start_proxyd "$T/map.conf" "$pm"
if "$PC" -d "$T/map" stats | grep -qx 'map_size 2097152'; then
	fill "tiny map" "$pm" "$T/map"
else
	for n in 1 2 3 4 5; do
		ok 0 "# SKIP tiny map: PROXYD_TEST_CACHE_MAP_SIZE needs --enable-test-hooks"
	done
fi
stop_proxyd >/dev/null
PIDS=${PIDS/ $PROXYD_PID/}

# (b), (c): one daemon stores a little in three caches, then their files are spoiled
read -r p1 p2 p3 p4 <<<"$(free_ports 4)"
mkdir -p "$T/whole" "$T/meta" "$T/pages"
cat >"$T/bad.conf" <<CONF
workers 1;
error_log stderr info;
cache whole { path $T/whole; }
cache meta { path $T/meta; }
cache pages { path $T/pages; }
cache missing { path $T/no-such-dir; }
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$p1; proxy_pass app; cache whole; }
server { listen 127.0.0.1:$p2; proxy_pass app; cache meta; }
server { listen 127.0.0.1:$p3; proxy_pass app; cache pages; }
server { listen 127.0.0.1:$p4; proxy_pass app; cache missing; }
CONF
: >"$T/proxyd.log"
start_proxyd "$T/bad.conf" "$p1"
for p in $p1 $p2 $p3; do
	for i in $(seq 1 30); do
		curl -s -m 10 -o /dev/null "http://127.0.0.1:$p/bytes/$((i * 3000))?cc=max-age%3D600"
	done
done
for _ in $(seq 1 50); do
	r=$(get "http://127.0.0.1:$p3/bytes/3000?cc=max-age%3D600" 3000 -H 'Cache-Control: only-if-cached')
	[ "$r" = HIT ] && break
	sleep 0.1
done
is "$r" HIT "before the damage: the caches hold entries"
stop_proxyd >/dev/null
PIDS=${PIDS/ $PROXYD_PID/}
ps=$(getconf PAGESIZE)
sz=$(stat -c %s "$T/whole/data.mdb")
head -c "$sz" /dev/urandom >"$T/whole/data.mdb"
dd if=/dev/urandom of="$T/meta/data.mdb" bs="$ps" count=2 conv=notrunc 2>/dev/null
sz=$(stat -c %s "$T/pages/data.mdb")
dd if=/dev/urandom of="$T/pages/data.mdb" bs="$ps" seek=2 count=$((sz / ps - 2)) conv=notrunc \
	2>/dev/null
: >"$T/proxyd.log"
start_proxyd "$T/bad.conf" "$p1"
log=$(cat "$T/proxyd.log")
like "$log" "cache \"missing\": .*no-such-dir.*serving uncached" "(b) a missing directory is logged"
like "$log" "cache \"whole\": .*serving uncached" "(c) random bytes over the whole file: logged"
like "$log" "cache \"meta\": .*serving uncached" "(c) over the meta pages: logged"
like "$log" "cache \"pages\": .*serving uncached" "(c) over every other page: logged"
for p in $p4 $p1 $p2 $p3; do
	r1=$(get "http://127.0.0.1:$p/bytes/3000?cc=max-age%3D600" 3000)
	r2=$(get "http://127.0.0.1:$p/bytes/3000?cc=max-age%3D600" 3000)
	is "$r1 $r2" "none none" "port $p: served uncached, the origin's body"
done
kill -0 "$PROXYD_PID" 2>/dev/null
ok $? "the daemon lives"
stop_proxyd >"$T/stop.rc"
is "$(cat "$T/stop.rc")" 0 "and stops cleanly"
