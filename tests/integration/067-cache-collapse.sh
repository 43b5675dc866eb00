#!/usr/bin/env bash
# Request collapsing (cache_lock) through the real daemon with two workers, counted at the
# origin: 100 concurrent requests for one cold, slow URL make one origin fetch and all get
# the whole body; an uncacheable URL under the same load reaches the origin 100 times, all
# at once (a lock timeout of a minute would otherwise serialize them past curl's limit);
# the lock timeout sends waiters upstream themselves; cache_lock off does not collapse;
# clients that leave while waiting, or a leader that leaves, break nothing; a fetch older
# than cache_lock_age is taken over by the next request, and the waiters are answered
# from the first fetch's object once it is stored; a leader whose fetch of a stale URL
# fails (stale-if-error) hands the stale entry to its waiters instead of sending them all
# to the failing origin, except waiters whose own request refuses it (no-cache, max-stale).
. "$TESTLIB"
plan 28
PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"

start_origin o1
start_origin o3 -D 5000
mkdir -p "$T/cache"
read -r port slow off aged pst psf adm <<<"$(free_ports 7)"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
admin { listen 127.0.0.1:$adm; }
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
upstream slow { server 127.0.0.1:$o3_port; }
# one Host for both: what pst stores (from o1) is what psf finds stale, while o3 times out
server { listen 127.0.0.1:$pst; proxy_pass app; cache main; }
server { listen 127.0.0.1:$psf; proxy_pass slow; proxy_read_timeout 1500ms; cache main;
	cache_lock_timeout 10s; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
reqs() { origin_stat "$o1_port" requests; }

# many N URL OUTDIR [CURL ARGS]: N concurrent curls (at most 100 at once), each body to
# OUTDIR/I, its head to OUTDIR/I.h and its status to OUTDIR/codes; every curl gives up after
# 20 seconds
many() {
	local n=$1 url=$2 dir=$3
	shift 3
	mkdir -p "$dir"
	seq 1 "$n" | xargs -P 100 -I{} sh -c \
		'd=$1 u=$2; shift 2
		curl -s --max-time 20 -D "$d/{}.h" -o "$d/{}" -w "%{http_code}\n" "$@" "$u" >>"$d/codes"' \
		_ "$dir" "$url" "$@"
}
# leading UPSTREAM PEER_PORT: wait (5 s at most) until a request is in flight to the peer,
# so that the leader holds the lock before its waiters come; no fixed head start
leading() {
	local k="proxyd_upstream_peer_active{upstream=\"$1\",peer=\"127.0.0.1:$2\"} "
	for _ in $(seq 1 100); do
		curl -s -m 2 "http://127.0.0.1:$adm/metrics" | grep -qF "${k}1" && return 0
		sleep 0.05
	done
	diag "no request in flight to $1 after 5 s"
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
sleep 1.5 # the daemon saves its counters at most once a second
st=$("$PC" -d "$T/cache" stats)
like "$st" "^hits 99$" "proxyd-cache stats: the 99 waiters are hits"
like "$st" "^misses 1$" "... and only the leader a miss (a waiter's first lookup is not one)"

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
leading app "$o1_port"
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
leading app "$o1_port"
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
leading app "$o1_port"
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

# stale-if-error under collapsing: the URL is stored (through o1), goes stale, and its
# origin now times out (o3 answers after 5 s, proxy_read_timeout 1.5 s). The leader serves
# the stale entry and so do its 20 plain waiters: one request reaches the failing origin
# for them all. Two waiters with no-cache and two with max-stale=0 do not accept a stale
# entry without trying the origin themselves, so they do (and then get it on their own
# failure). Before, every waiter went upstream: 25 requests to an origin that was failing.
H='Host: stale.test'
SE="/bytes/900?cc=max-age%3D1%2C%20stale-if-error%3D600"
curl -s -o "$T/se-want" -H "$H" "http://127.0.0.1:$pst$SE"
sleep 2.2 # stale now (max-age=1)
s0=$(origin_stat "$o3_port" requests)
mkdir -p "$T/se"
curl -s --max-time 20 -H "$H" -D "$T/se/0.h" -o "$T/se/0" -w "%{http_code}\n" \
	"http://127.0.0.1:$psf$SE" >"$T/se-lead-code" &
lead=$!
leading slow "$o3_port"
many 20 "http://127.0.0.1:$psf$SE" "$T/se" -H "$H" &
p1=$!
many 2 "http://127.0.0.1:$psf$SE" "$T/se-nc" -H "$H" -H 'Cache-Control: no-cache' &
p2=$!
many 2 "http://127.0.0.1:$psf$SE" "$T/se-ms" -H "$H" -H 'Cache-Control: max-stale=0' &
p3=$!
wait "$lead" "$p1" "$p2" "$p3"
s1=$(origin_stat "$o3_port" requests)
is "$((s1 - s0))" 6 \
	"a leader served stale on error: 20 waiters take the stale entry, 4 that refuse it fetch (5 + /stats)"
cat "$T/se-lead-code" >>"$T/se/codes"
cat "$T/se-nc/codes" "$T/se-ms/codes" >>"$T/se/codes"
is "$(grep -c '^200$' "$T/se/codes")" 25 "all 25 answered 200"
want=$(md5sum <"$T/se-want")
good=0
for f in "$T"/se/[0-9]* "$T"/se-nc/[0-9]* "$T"/se-ms/[0-9]*; do
	case "$f" in *.h) continue ;; esac
	[ "$(md5sum <"$f")" = "$want" ] && good=$((good + 1))
done
is "$good" 25 "all 25 bodies are the stored entry's"
is "$(($(xcache_count "$T/se" STALE) + $(xcache_count "$T/se-nc" STALE) + \
	$(xcache_count "$T/se-ms" STALE)))" 25 "all 25 are X-Cache: STALE"

kill -0 "$PROXYD_PID" 2>/dev/null
is "$?" 0 "proxyd still runs"
