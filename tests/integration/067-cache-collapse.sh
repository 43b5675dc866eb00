#!/usr/bin/env bash
# Request collapsing (cache_lock) through the real daemon with two workers, counted at the
# origin: 100 concurrent requests for one cold, slow URL make one origin fetch and all get
# the whole body; an uncacheable URL under the same load reaches the origin 100 times, all
# at once (a lock timeout of a minute would otherwise serialize them past curl's limit);
# the lock timeout sends waiters upstream themselves; cache_lock off does not collapse;
# clients that leave while waiting, or a leader that leaves, break nothing; a fetch older
# than cache_lock_age is taken over by the next request, and the waiters are answered
# from the first fetch's object once it is stored.
. "$TESTLIB"
plan 22

start_origin o1
mkdir -p "$T/cache"
read -r port slow off aged <<<"$(free_ports 4)"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
cache main { path $T/cache; max_size 64m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 16; }
server {
	listen 127.0.0.1:$port;
	proxy_pass app;
	cache main;
	cache_lock_timeout 60s;
	access_log $T/access.log;
}
server { listen 127.0.0.1:$slow; proxy_pass app; cache main; cache_lock_timeout 300ms; }
server { listen 127.0.0.1:$off; proxy_pass app; cache main; cache_lock off; }
server { listen 127.0.0.1:$aged; proxy_pass app; cache main; cache_lock_timeout 60s;
	cache_lock_age 1s; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
reqs() { origin_stat "$o1_port" requests; }

# many N URL OUTDIR: N concurrent curls (at most 100 at once), each body to OUTDIR/I and a
# line "CODE X-Cache" to OUTDIR/codes; every curl gives up after 20 seconds
many() {
	local n=$1 url=$2 dir=$3
	mkdir -p "$dir"
	seq 1 "$n" | xargs -P 100 -I{} sh -c \
		'curl -s --max-time 20 -D "$1/{}.h" -o "$1/{}" -w "%{http_code}\n" "$2" >>"$1/codes"' \
		_ "$dir" "$url"
}
xcache_count() { cat "$1"/*.h 2>/dev/null | tr -d '\r' | grep -c "^X-Cache: $2\$"; }

want=$(curl -s "http://127.0.0.1:$o1_port/bytes/200000" | md5sum)
U="$B/bytes/200000?cc=max-age%3D60&delay=1500"
r0=$(reqs)
many 100 "$U" "$T/a"
r1=$(reqs)
is "$((r1 - r0))" 2 "100 concurrent misses on one slow URL: one origin fetch (and one /stats)"
is "$(grep -c '^200$' "$T/a/codes")" 100 "all 100 answered 200"
good=0
for i in $(seq 1 100); do
	[ "$(md5sum <"$T/a/$i")" = "$want" ] && good=$((good + 1))
done
is "$good" 100 "all 100 bodies are the origin's, whole"
is "$(xcache_count "$T/a" MISS)" 1 "one MISS (the leader)"
is "$(xcache_count "$T/a" HIT)" 99 "99 HITs (the waiters, served from the entry)"

# uncacheable: the waiters of the one fetch go upstream together, later ones do not wait
P="$B/bytes/1000?cc=private&delay=1000"
r0=$(reqs)
many 100 "$P" "$T/p"
r1=$(reqs)
is "$((r1 - r0))" 101 "100 concurrent requests for a private URL: all reach the origin"
is "$(grep -c '^200$' "$T/p/codes")" 100 "and all are answered 200 well before curl gives up"
is "$(xcache_count "$T/p" HIT)" 0 "none is a hit"

# a 5xx is not stored either: the waiters are not kept waiting for a minute
E="$B/status/503?delay=800"
r0=$(reqs)
many 20 "$E" "$T/e"
is "$(grep -c '^503$' "$T/e/codes")" 20 "20 concurrent requests for a 503: all get it"

# the lock timeout (300ms on this server): waiters go upstream themselves, not stored
S="http://127.0.0.1:$slow/bytes/500?cc=max-age%3D60&delay=2000"
r0=$(reqs)
many 5 "$S" "$T/s"
r1=$(reqs)
is "$((r1 - r0))" 6 "cache_lock_timeout passed: each of 5 requests fetched"
is "$(grep -c '^200$' "$T/s/codes")" 5 "all 5 answered 200"
sleep 0.3
is "$(curl -s -o /dev/null -D - "$S" | tr -d '\r' | sed -n 's/^X-Cache: //p')" HIT \
	"the leader's response was stored"

# cache_lock off: no collapsing
O="http://127.0.0.1:$off/bytes/500?cc=max-age%3D60&delay=1000"
r0=$(reqs)
many 10 "$O" "$T/o"
r1=$(reqs)
is "$((r1 - r0))" 11 "cache_lock off: 10 concurrent misses make 10 fetches"

# waiters that leave: the rest are served and nothing breaks
W="$B/bytes/3000?cc=max-age%3D60&delay=1500"
r0=$(reqs)
curl -s -o "$T/w-lead" "$W" &
lead=$!
sleep 0.3
quit=""
for i in 1 2 3 4 5; do
	curl -s --max-time 0.3 -o /dev/null "$W" &
	quit="$quit $!"
done
for p in $quit; do wait "$p"; done
many 5 "$W" "$T/w"
wait "$lead"
r1=$(reqs)
is "$((r1 - r0))" 2 "five waiters gave up, five more waited: still one fetch"
is "$(grep -c '^200$' "$T/w/codes")" 5 "the waiters that stayed got 200"
is "$(wc -c <"$T/w-lead")" 3000 "and the leader its whole body"

# a leader that leaves: its waiters go upstream themselves
L="$B/bytes/4000?cc=max-age%3D60&delay=1500"
curl -s --max-time 0.4 -o /dev/null "$L"&
lead=$!
sleep 0.2
many 5 "$L" "$T/l"
wait "$lead"
is "$(grep -c '^200$' "$T/l/codes")" 5 "the leader left: its 5 waiters still got 200"
good=0
for i in 1 2 3 4 5; do [ "$(wc -c <"$T/l/$i")" = 4000 ] && good=$((good + 1)); done
is "$good" 5 "with whole bodies"

# cache_lock_age 1s: A fetches (3 s), B waits, C comes after 1.5 s and fetches too; A's
# object, once stored, answers B
G="http://127.0.0.1:$aged/bytes/5000?cc=max-age%3D60&delay=3000"
r0=$(reqs)
curl -s -D "$T/age-a.h" -o /dev/null "$G" &
pa=$!
sleep 0.3
curl -s -D "$T/age-b.h" -o "$T/age-b" "$G" &
pb=$!
sleep 1.2
curl -s -D "$T/age-c.h" -o /dev/null "$G" &
pc=$!
wait "$pa" "$pb" "$pc"
r1=$(reqs)
is "$((r1 - r0))" 3 "a fetch older than cache_lock_age: the next request fetches too (2 + /stats)"
is "$(tr -d '\r' <"$T/age-c.h" | sed -n 's/^X-Cache: //p')" MISS "the late request led its own fetch"
is "$(tr -d '\r' <"$T/age-b.h" | sed -n 's/^X-Cache: //p'):$(wc -c <"$T/age-b")" HIT:5000 \
	"the waiter was answered from the first fetch's stored object"

kill -0 "$PROXYD_PID" 2>/dev/null
is "$?" 0 "proxyd still runs"
