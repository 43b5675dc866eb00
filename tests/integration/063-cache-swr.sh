#!/usr/bin/env bash
# stale-while-revalidate (RFC 5861) through the real daemon with two workers, counted at
# the origin: a stale entry within its window is served at once (X-Cache: STALE) while
# one background refresh runs at the slow origin (its `active` count shows it in flight
# after the client already has the old body); concurrent stale hits meanwhile are UPDATING
# and start no other refresh; the refresh replaces the entry (a new Date) or, with an ETag
# the origin still matches, renews it with a 304; past the window the entry is
# revalidated before use as before.
. "$TESTLIB"
plan 20

start_origin o1
mkdir -p "$T/cache"
port=$(free_port)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr debug;
cache main { path $T/cache; max_size 64m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 16; }
server {
	listen 127.0.0.1:$port;
	proxy_pass app;
	cache main;
	access_log $T/access.log;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
reqs() { origin_stat "$o1_port" requests; }
field() { tr -d '\r' <"$1" | sed -n "s/^$2: //p"; }
# wait_hit URL: until the URL is a HIT (at most 10 s); prints the number of tries
wait_hit() {
	local i
	for i in $(seq 1 50); do
		curl -s -o /dev/null -D "$T/wh.h" "$1"
		[ "$(field "$T/wh.h" X-Cache)" = HIT ] && {
			echo "$i"
			return 0
		}
		sleep 0.2
	done
	echo never
	return 1
}

want=$(curl -s "http://127.0.0.1:$o1_port/bytes/5000" | md5sum)
# the origin dates a response when the request comes: a delayed one is born aged
CC="cc=max-age%3D5%2C%20stale-while-revalidate%3D60"
U="$B/bytes/5000?$CC&delay=2000"
r0=$(reqs)
curl -s -o /dev/null -D "$T/1.h" "$U"
is "$(field "$T/1.h" X-Cache)" MISS "first request: a miss (the origin takes 2 s)"
sleep 4 # the entry is stale now, within its stale-while-revalidate window
curl -s -o "$T/2.b" -D "$T/2.h" "$U"
rm=$(reqs)
is "$(field "$T/2.h" X-Cache)" STALE "stale within the window: served at once (STALE)"
like "$(field "$T/2.h" Cache-Status)" "^proxyd; hit; ttl=-[0-9]+; fwd=stale$" \
	"Cache-Status: a hit with a negative ttl that sent a refresh forward"
is "$(md5sum <"$T/2.b")" "$want" "with the stored body"
is "$(field "$T/2.h" Date)" "$(field "$T/1.h" Date)" "the old response (its Date)"
is "$((rm - r0))" 3 "the refresh went to the origin (besides the miss and one /stats)"
pids=""
for i in $(seq 1 10); do
	curl -s --max-time 20 -o "$T/u$i.b" -D "$T/u$i.h" "$U" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
n=0
for i in $(seq 1 10); do [ "$(field "$T/u$i.h" X-Cache)" = UPDATING ] && n=$((n + 1)); done
is "$n" 10 "10 concurrent stale hits while the refresh is in flight: UPDATING"
n=0
for i in $(seq 1 10); do [ "$(md5sum <"$T/u$i.b")" = "$want" ] && n=$((n + 1)); done
is "$n" 10 "all with the whole body"
tries=$(wait_hit "$U")
like "$tries" "^[0-9]+$" "the refresh lands: a HIT"
curl -s -o /dev/null -D "$T/3.h" "$U"
isnt_date=$([ "$(field "$T/3.h" Date)" != "$(field "$T/1.h" Date)" ] && echo new || echo old)
is "$isnt_date" new "the entry is the refreshed response (a new Date)"
r1=$(reqs)
# the miss, one refresh, and two /stats
is "$((r1 - r0))" 4 "one refresh in all at the origin"
is "$(grep -c 'GET /bytes/5000' "$T/access.log")" "$((13 + tries))" \
	"the access log has the clients' requests only, not the refresh"
is "$(grep 'GET /bytes/5000' "$T/access.log" | grep -c 'cache=STALE')" 1 \
	"one request started the refresh (cache=STALE in the access log)"

# with a validator the origin still matches, the refresh is a 304 that renews the entry
E="$B/bytes/700?$CC&delay=1500&notmod=1&h=ETag:%20%22e1%22"
curl -s -o /dev/null "$E"
sleep 4
r0=$(reqs)
curl -s -o "$T/4.b" -D "$T/4.h" "$E"
is "$(field "$T/4.h" X-Cache)" STALE "an entry with an ETag: served stale"
like "$(wait_hit "$E")" "^[0-9]+$" "then renewed by the background 304"
curl -s -o "$T/5.b" -D "$T/5.h" "$E"
like "$(field "$T/5.h" Age)" "^[0-3]$" "its age starts again"
is "$(wc -c <"$T/5.b")" 700 "with the stored body"
r1=$(reqs)
is "$((r1 - r0))" 2 "one conditional refresh at the origin (and this /stats)"
like "$(cat "$T/proxyd.log")" "background refresh \\*[0-9]+ of http://127.0.0.1:$port/bytes/700" \
	"the error log names the refresh (debug)"

# past the window: revalidated before use, as without stale-while-revalidate
X="$B/bytes/100?cc=max-age%3D1%2C%20stale-while-revalidate%3D1"
curl -s -o /dev/null "$X"
sleep 3.5 # ages count whole seconds: 2 past the window at least
is "$(curl -s -o /dev/null -D - "$X" | tr -d '\r' | sed -n 's/^X-Cache: //p')" EXPIRED \
	"stale past the window: fetched again (EXPIRED)"
