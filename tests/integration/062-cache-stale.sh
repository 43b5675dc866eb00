#!/usr/bin/env bash
# stale-if-error (RFC 5861) and cache_use_stale through the real daemon: when the upstream
# answers 500/502/503/504, refuses the connection, times out, or is stopped, a stale entry
# answers instead (X-Cache: STALE, Cache-Status fwd=stale) if the entry's or the request's
# stale-if-error allows it, or the server's cache_use_stale lists the failure; never an
# entry with must-revalidate or no-cache, nor past the stale-if-error window.
#
# Several servers share one cache, and the client names one Host for all of them, so an
# entry stored through the healthy server is the one the failing servers find:
#   A  -> origin o1 (healthy; stores the entries)
#   E  -> a proxyd server that answers `return 503` (no cache_use_stale)
#   F  -> the same 503s, with cache_use_stale http_503
#   G  -> a port nothing listens on (connection refused), no cache_use_stale
#   N  -> two such ports, max_fails=1: after one request both are down (no live upstreams)
#   X  a forward proxy (its own entries: keyed by origin o4's address), origin o4 stopped
#   S  -> origin o3, which answers after 3 s; proxy_read_timeout 1s, cache_use_stale timeout
. "$TESTLIB"
plan 32

start_origin o1
start_origin o3 -D 3000
start_origin o4
mkdir -p "$T/cache"
read -r pa pe pf pg ps pr pn px <<<"$(free_ports 8)"
dead=$(dead_port)
dead2=$(dead_port)
while [ "$dead2" = "$dead" ]; do dead2=$(dead_port); done
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
cache main { path $T/cache; max_size 64m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
upstream r503 { server 127.0.0.1:$pr; }
upstream dead { server 127.0.0.1:$dead; }
upstream slow { server 127.0.0.1:$o3_port; }
upstream down {
	server 127.0.0.1:$dead max_fails=1 fail_timeout=60s;
	server 127.0.0.1:$dead2 max_fails=1 fail_timeout=60s;
}
server { listen 127.0.0.1:$pr; return 503; }
server { listen 127.0.0.1:$pa; proxy_pass app; cache main; }
server { listen 127.0.0.1:$pe; proxy_pass r503; cache main; }
server { listen 127.0.0.1:$pf; proxy_pass r503; cache main; cache_use_stale error http_503; }
server { listen 127.0.0.1:$pg; proxy_pass dead; cache main; }
server { listen 127.0.0.1:$pn; proxy_pass down; cache main; cache_use_stale error; }
server { listen 127.0.0.1:$px; mode forward; cache main; }
server {
	listen 127.0.0.1:$ps;
	proxy_pass slow;
	proxy_read_timeout 1s;
	cache main;
	cache_use_stale timeout;
}
CONF
start_proxyd "$T/proxyd.conf" "$pa"
for p in $pe $pf $pg $ps $pr $pn $px; do wait_port 127.0.0.1 "$p" || bail "proxyd port $p"; done
H='Host: site.test'
reqs() { origin_stat "$o1_port" requests; }
# get PORT PATH [curl args]: head (CR removed) into $T/h, body into $T/b
get() {
	local p=$1 path=$2
	shift 2
	curl -s -m 10 -H "$H" -D "$T/h.raw" -o "$T/b" "$@" "http://127.0.0.1:$p$path"
	tr -d '\r' <"$T/h.raw" >"$T/h"
}
code() { sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$T/h"; }
field() { sed -n "s/^$1: //Ip" "$T/h" | head -1; }
# store PATH...: fetch through A (stored), then wait until every entry is stale
store() {
	for u in "$@"; do curl -s -o /dev/null -H "$H" "http://127.0.0.1:$pa$u"; done
	sleep 2.2
}

SIE="/bytes/700?cc=max-age%3D1%2C%20stale-if-error%3D600"
PLAIN="/bytes/701?cc=max-age%3D1"
MR="/bytes/702?cc=max-age%3D1%2C%20must-revalidate%2C%20stale-if-error%3D600"
NC="/bytes/703?cc=no-cache%2C%20stale-if-error%3D600"
SHORT="/bytes/704?cc=max-age%3D1%2C%20stale-if-error%3D1"
store "$SIE" "$PLAIN" "$MR" "$NC" "$SHORT"
curl -s -o "$T/o700" "http://127.0.0.1:$o1_port/bytes/700"
r0=$(reqs)

get "$pe" "$SIE"
is "$(code) $(field X-Cache)" "200 STALE" "a 503 upstream: the stale entry with stale-if-error answers"
is "$(md5sum <"$T/b")" "$(md5sum <"$T/o700")" "with the stored body"
like "$(field Cache-Status)" "^proxyd; fwd=stale; fwd-status=503; ttl=-[0-9]+; detail=stale-if-error$" \
	"Cache-Status says fwd=stale and the upstream's 503"
like "$(field Age)" "^[0-9]+$" "and an Age"
get "$pe" "$PLAIN"
is "$(code) $(field X-Cache)" "503 EXPIRED" "without stale-if-error the 503 passes"
get "$pe" "$PLAIN" -H 'Cache-Control: stale-if-error=600'
is "$(code) $(field X-Cache)" "200 STALE" "the request's stale-if-error allows it too"
get "$pe" "$MR"
is "$(code)" 503 "must-revalidate forbids serving stale on error"
get "$pe" "$NC"
is "$(code)" 503 "so does no-cache"
sleep 1.1
get "$pe" "$SHORT"
is "$(code)" 503 "past the stale-if-error window: the 503"
get "$pe" "$SIE" -H 'Range: bytes=0-9'
is "$(code) $(field Content-Range) $(field X-Cache)" "206 bytes 0-9/700 STALE" \
	"a Range request on error: the range of the stale entry"
curl -s -I -m 10 -H "$H" -D "$T/h.raw" -o /dev/null "http://127.0.0.1:$pe$SIE"
tr -d '\r' <"$T/h.raw" >"$T/h"
is "$(code) $(field Content-Length) $(field X-Cache)" "200 700 STALE" "HEAD on error: the stale head"

get "$pf" "$PLAIN"
is "$(code) $(field X-Cache)" "200 STALE" "cache_use_stale http_503: stale without stale-if-error"
get "$pf" "$MR"
is "$(code)" 503 "but never a must-revalidate entry"
get "$pf" "$NC"
is "$(code)" 503 "nor a no-cache one"
get "$pf" "/bytes/799?cc=max-age%3D60"
is "$(code) $(field X-Cache)" "503 MISS" "nothing stored: the 503"

get "$pg" "$SIE"
is "$(code) $(field X-Cache)" "200 STALE" "connection refused: stale-if-error serves the entry"
like "$(field Cache-Status)" "^proxyd; fwd=stale; ttl=-[0-9]+; detail=stale-if-error$" \
	"Cache-Status without a fwd-status (no response came)"
get "$pg" "$SIE"
is "$(code) $(field X-Cache)" "200 STALE" "and again on the next request"
get "$pg" "$PLAIN"
is "$(code)" 502 "no stale-if-error, no cache_use_stale error: the 502"
get "$pn" "$PLAIN"
is "$(code) $(field X-Cache)" "200 STALE" "cache_use_stale error: both peers refuse, the stale entry"
get "$pn" "$PLAIN"
is "$(code) $(field X-Cache)" "200 STALE" "both marked down now (no live upstreams): still the stale entry"
like "$(cat "$T/proxyd.log")" 'upstream "down": no live peers' "(the upstream was down)"
is "$(reqs)" "$((r0 + 1))" "o1 saw none of it (the one request is this /stats)"

s0=$(origin_stat "$o3_port" requests)
get "$ps" "$PLAIN"
is "$(code) $(field X-Cache)" "200 STALE" "cache_use_stale timeout: a slow upstream gets the stale entry"
is "$(origin_stat "$o3_port" requests)" "$((s0 + 2))" "the request did reach the slow origin"

# a forward proxy's origin stopped
FX="http://127.0.0.1:$o4_port$SIE"
curl -s -o /dev/null -x "127.0.0.1:$px" "$FX"
sleep 2.2
kill "$o4_pid"
wait "$o4_pid" 2>/dev/null
curl -s -m 10 -x "127.0.0.1:$px" -D "$T/h.raw" -o "$T/b" "$FX"
tr -d '\r' <"$T/h.raw" >"$T/h"
is "$(code) $(field X-Cache)" "200 STALE" "forward mode, origin stopped: the stale entry answers"
is "$(md5sum <"$T/b")" "$(md5sum <"$T/o700")" "with the stored body"
curl -s -m 10 -x "127.0.0.1:$px" -D "$T/h.raw" -o "$T/b" "http://127.0.0.1:$o4_port$PLAIN"
tr -d '\r' <"$T/h.raw" >"$T/h"
is "$(code)" 502 "an origin that was never stored: 502"

# the healthy server's own origin stopped
kill "$o1_pid"
wait "$o1_pid" 2>/dev/null
get "$pa" "$SIE"
is "$(code) $(field X-Cache)" "200 STALE" "origin stopped: the stale entry answers"
is "$(md5sum <"$T/b")" "$(md5sum <"$T/o700")" "complete"
get "$pa" "$PLAIN"
is "$(code)" 502 "an entry without stale-if-error does not"
like "$(cat "$T/proxyd.log")" "upstream failed, serving the stale http://site.test/bytes/700" \
	"the error log says a stale entry answered"
