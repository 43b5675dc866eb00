#!/usr/bin/env bash
# Cache policy switches through the real daemon: heuristic freshness from Last-Modified
# (on by default, `cache_heuristic off`, a small `max=`), `cache_store_set_cookie` (a
# Set-Cookie response is stored without its cookies), and `proxyd-cache stats` showing the
# daemon's hits, misses and hit ratio while it runs.
. "$TESTLIB"
plan 16

PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"
start_origin o1
mkdir -p "$T/c1" "$T/c2" "$T/c3"
read -r p1 p2 p3 <<<"$(free_ports 3)"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
cache c1 { path $T/c1; max_size 16m; }
cache c2 { path $T/c2; max_size 16m; }
cache c3 { path $T/c3; max_size 16m; }
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$p1; proxy_pass app; cache c1; }
server { listen 127.0.0.1:$p2; proxy_pass app; cache c2; cache_heuristic off; }
server { listen 127.0.0.1:$p3; proxy_pass app; cache c3; cache_heuristic 50% max=3s;
         cache_store_set_cookie on; }
CONF
start_proxyd "$T/proxyd.conf" "$p1"
wait_port 127.0.0.1 "$p2"
wait_port 127.0.0.1 "$p3"
hdrs() { curl -s -D - -o /dev/null "$@" | tr -d '\r'; }
xc() { hdrs "$@" | sed -n 's/^X-Cache: //p'; }
settle() { sleep 0.3; }
# Last-Modified ten days before now: 10% of that is a day of freshness
lm=$(date -u -d '10 days ago' '+%a, %d %b %Y %H:%M:%S GMT' | sed 's/ /%20/g; s/,/%2C/g')
L="/bytes/200?h=Last-Modified:%20$lm"

xc "http://127.0.0.1:$p1$L" >/dev/null
settle
is "$(xc "http://127.0.0.1:$p1$L")" HIT "Last-Modified alone: heuristically fresh by default"
like "$(hdrs "http://127.0.0.1:$p1$L")" "Cache-Status: proxyd; hit; ttl=8[0-9]{4}" \
	"... for about 10% of its age (a day)"

xc "http://127.0.0.1:$p2$L" >/dev/null
settle
is "$(xc "http://127.0.0.1:$p2$L")" EXPIRED \
	"cache_heuristic off: no freshness, every use revalidates with Last-Modified"

xc "http://127.0.0.1:$p3$L" >/dev/null
settle
is "$(xc "http://127.0.0.1:$p3$L")" HIT "cache_heuristic 50% max=3s: stored"
like "$(hdrs "http://127.0.0.1:$p3$L")" "Cache-Status: proxyd; hit; ttl=[0-3]\$" \
	"... for three seconds at most"
sleep 3.5
is "$(xc "http://127.0.0.1:$p3$L")" EXPIRED "... and stale after it"

C="/bytes/300?cc=max-age%3D60&h=Set-Cookie:%20sid%3Dsecret1"
first=$(hdrs "http://127.0.0.1:$p1$C")
like "$first" "Set-Cookie: sid=secret1" "the client whose request fetched it gets its cookie"
settle
is "$(xc "http://127.0.0.1:$p1$C")" MISS "Set-Cookie: not stored by default"
first=$(hdrs "http://127.0.0.1:$p3$C")
like "$first" "Set-Cookie: sid=secret1" "cache_store_set_cookie on: the fetching client gets its cookie"
settle
second=$(hdrs "http://127.0.0.1:$p3$C")
like "$second" "X-Cache: HIT" "... and the response is stored"
unlike "$second" "Set-Cookie" "... without the cookie"

# proxyd-cache stats: the daemon's counters (saved at most once a second)
H="/bytes/100?cc=max-age%3D60"
for _ in 1 2 3 4; do curl -s -o /dev/null "http://127.0.0.1:$p2$H"; done
sleep 1.5
st=$("$PC" -d "$T/c2" stats)
like "$st" "^hits 4$" "proxyd-cache stats: the daemon's hits (3 of the 4, and the stale one)"
like "$st" "^misses 2$" "... its misses"
like "$st" "hit_ratio 0\\.667" "... the hit ratio"
like "$st" "max_size 16777216" "... the daemon's max_size"
like "$st" "since [0-9]{4}-[0-9]{2}-[0-9]{2}T" "... since the daemon opened the cache"
