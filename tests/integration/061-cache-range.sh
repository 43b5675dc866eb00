#!/usr/bin/env bash
# Range requests answered from a complete cache entry through the real daemon: 206 with
# Content-Range for a single range (first-last, suffix -N, open N-), 416 with bytes */LEN
# when unsatisfiable, If-Range by strong ETag or exact Last-Modified date, the whole 200
# for several ranges and for HEAD; slices across the store's chunks match the origin's
# bytes; none of it reaches the origin. A Range request that misses goes to the origin
# as is and a 206 from it is not stored. Unsafe methods invalidate Location and
# Content-Location URLs of the same origin, never another origin's (RFC 9111 4.4).
. "$TESTLIB"
plan 41

start_origin o1
mkdir -p "$T/cache"
port=$(free_port)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
cache main { path $T/cache; max_size 64m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
server {
	listen 127.0.0.1:$port;
	proxy_pass app;
	cache main;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
O="http://127.0.0.1:$o1_port"
reqs() { origin_stat "$o1_port" requests; }
settle() { sleep 0.3; } # the store commits in its writer thread
# get ARGS...: the head (CR removed) into $T/h, the body into $T/b
get() { curl -s -D "$T/h.raw" -o "$T/b" "$@"; tr -d '\r' <"$T/h.raw" >"$T/h"; }
code() { sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$T/h"; }
field() { sed -n "s/^$1: //Ip" "$T/h" | head -1; }
size() { wc -c <"$T/b" | tr -d ' '; }

# the origin's bytes, to compare slices with
curl -s -o "$T/full1000" "$O/bytes/1000"
U="$B/bytes/1000?cc=max-age%3D60&h=ETag:%20%22e1%22&h=Last-Modified:%20Tue,%2001%20Sep%202026%2010:00:00%20GMT"
get "$U"
is "$(field X-Cache)" MISS "the entry is stored by a first GET"
settle
r0=$(reqs)

get -H 'Range: bytes=0-99' "$U"
is "$(code)" 206 "bytes=0-99 from the cache: 206"
is "$(field Content-Range)" "bytes 0-99/1000" "with Content-Range"
is "$(field Content-Length)" 100 "and the slice's Content-Length"
is "$(md5sum <"$T/b")" "$(head -c 100 "$T/full1000" | md5sum)" "the slice is the origin's bytes"
is "$(field X-Cache)" HIT "X-Cache: HIT"

get -H 'Range: bytes=-100' "$U"
is "$(code) $(field Content-Range)" "206 bytes 900-999/1000" "suffix range -100"
is "$(md5sum <"$T/b")" "$(tail -c 100 "$T/full1000" | md5sum)" "the last 100 bytes"
get -H 'Range: bytes=990-' "$U"
is "$(code) $(field Content-Range) $(size)" "206 bytes 990-999/1000 10" "open range 990-"
get -H 'Range: bytes=500-5000' "$U"
is "$(code) $(field Content-Range) $(size)" "206 bytes 500-999/1000 500" \
	"a last byte past the end is clipped"
get -H 'Range: bytes=-5000' "$U"
is "$(code) $(field Content-Range) $(size)" "206 bytes 0-999/1000 1000" \
	"a suffix longer than the body is all of it"

get -H 'Range: bytes=1000-' "$U"
is "$(code)" 416 "a range starting at the length: 416"
is "$(field Content-Range) $(size)" "bytes */1000 0" "with Content-Range: bytes */1000, no body"

get -H 'Range: bytes=0-9,20-29' "$U"
is "$(code) $(size)" "200 1000" "several ranges: the whole 200 (Range may be ignored)"
get -H 'Range: items=0-9' "$U"
is "$(code) $(size)" "200 1000" "another unit: the whole 200"

get -H 'Range: bytes=10-19' -H 'If-Range: "e1"' "$U"
is "$(code) $(field Content-Range)" "206 bytes 10-19/1000" "If-Range with the entry's ETag: 206"
get -H 'Range: bytes=10-19' -H 'If-Range: "e2"' "$U"
is "$(code) $(size)" "200 1000" "If-Range with another ETag: the whole 200"
get -H 'Range: bytes=10-19' -H 'If-Range: W/"e1"' "$U"
is "$(code) $(size)" "200 1000" "a weak If-Range never matches (strong comparison)"
get -H 'Range: bytes=10-19' -H 'If-Range: Tue, 01 Sep 2026 10:00:00 GMT' "$U"
is "$(code) $(field Content-Range)" "206 bytes 10-19/1000" \
	"If-Range with the exact Last-Modified date: 206"
get -H 'Range: bytes=10-19' -H 'If-Range: Tue, 01 Sep 2026 10:00:01 GMT' "$U"
is "$(code) $(size)" "200 1000" "If-Range with another date: the whole 200"

curl -s -I -D "$T/h.raw" -o /dev/null -H 'Range: bytes=0-99' "$U"
tr -d '\r' <"$T/h.raw" >"$T/h"
is "$(code) $(field Content-Length) $(field Content-Range)" "200 1000 " \
	"HEAD with Range: 200 with the whole length (range handling is GET's only)"
is "$(field X-Cache)" HIT "from the cache"
get -H 'Range: bytes=0-99' -H 'If-None-Match: "e1"' "$U"
is "$(code)" 304 "a matching If-None-Match wins over Range: 304"
is "$(reqs)" "$((r0 + 1))" "none of these reached the origin (the one request is this /stats)"

# slices that cross the store's 64 KiB chunks, on a large entry
curl -s -o "$T/full5m" "$O/bytes/5000000"
L="$B/bytes/5000000?cc=max-age%3D60"
curl -s -o /dev/null "$L"
settle
get -H 'Range: bytes=65000-3000999' "$L"
is "$(code) $(field Content-Range) $(size)" "206 bytes 65000-3000999/5000000 2936000" \
	"a slice across chunks of a 5 MB entry"
is "$(md5sum <"$T/b")" "$(tail -c +65001 "$T/full5m" | head -c 2936000 | md5sum)" \
	"its bytes are the origin's"
is "$(field X-Cache)" HIT "served from the cache"

# a Range request that misses goes to the origin as is
r1=$(reqs)
M="$B/bytes/300?cc=max-age%3D60"
get -H 'Range: bytes=0-9' "$M"
is "$(code) $(size) $(field X-Cache)" "200 300 MISS" \
	"a Range miss is forwarded (this origin ignores Range: its 200 passes)"
settle
get -H 'Range: bytes=0-9' "$M"
is "$(code) $(field Content-Range) $(field X-Cache)" "206 bytes 0-9/300 HIT" \
	"the 200 was stored: the next Range request is a 206 from the cache"
P="$B/bytes/10?cc=max-age%3D60&status=206&h=Content-Range:%20bytes%200-9/100"
get -H 'Range: bytes=0-9' "$P"
is "$(code) $(field Content-Range) $(field X-Cache)" "206 bytes 0-9/100 MISS" \
	"the origin's 206 is relayed"
settle
get -H 'Range: bytes=0-9' "$P"
is "$(field X-Cache)" MISS "and never stored"
is "$(reqs)" "$((r1 + 4))" "the origin saw the three misses (and this /stats)"
like "$(curl -s -H 'Range: bytes=0-9' "$B/headers?cc=max-age%3D60" | tr -d '\r')" \
	"(^|$(printf '\n'))Range: bytes=0-9" "the Range field of a miss reaches the origin"

# a stale entry is revalidated (the Range goes upstream with proxyd's validators); after
# the origin's 304 the client gets the whole stored 200, as RFC 9110 allows
RV="$B/bytes/400?cc=max-age%3D3&h=ETag:%20%22r1%22&notmod=1"
curl -s -o /dev/null "$RV"
sleep 3.5
get -H 'Range: bytes=0-9' "$RV"
is "$(code) $(size) $(field X-Cache)" "200 400 REVALIDATED" \
	"a Range on an entry revalidated with a 304: the whole 200"
settle
get -H 'Range: bytes=0-9' "$RV"
is "$(code) $(field Content-Range) $(field X-Cache)" "206 bytes 0-9/400 HIT" \
	"then, fresh again, the range from the cache"

# invalidation of Location and Content-Location (RFC 9111 4.4)
V="$B/bytes/11?cc=max-age%3D60"
W="$B/bytes/12?cc=max-age%3D60"
curl -s -o /dev/null "$V"
curl -s -o /dev/null "$W"
curl -s -o /dev/null -H 'Host: other.test' "$V"
settle
get "$V"
a=$(field X-Cache)
get -H 'Host: other.test' "$V"
is "$a $(field X-Cache)" "HIT HIT" "entries for two origins are stored"
# a POST whose response names /bytes/11 in Location; /bytes/12 in Content-Location
curl -s -o /dev/null --data x=1 \
	"$B/echo?h=Location:%20/bytes/11%3Fcc%3Dmax-age%253D60&h=Content-Location:%20http://127.0.0.1:$port/bytes/12%3Fcc%3Dmax-age%253D60"
settle
get "$V"
is "$(field X-Cache)" MISS "a POST's Location of the same origin invalidates it"
get "$W"
is "$(field X-Cache)" MISS "and so does its absolute Content-Location of the same origin"
settle
curl -s -o /dev/null --data x=1 \
	"$B/echo?h=Location:%20http://other.test/bytes/11%3Fcc%3Dmax-age%253D60&h=Content-Location:%20//other.test/bytes/11%3Fcc%3Dmax-age%253D60"
settle
get -H 'Host: other.test' "$V"
is "$(field X-Cache)" HIT "another origin's Location or Content-Location invalidates nothing"
get "$V"
is "$(field X-Cache)" HIT "nor the POST's own origin's entries of that path"
curl -s -o /dev/null --data x=1 "$B/echo?status=500&h=Location:%20/bytes/11%3Fcc%3Dmax-age%253D60"
settle
get "$V"
is "$(field X-Cache)" HIT "an error response to a POST invalidates nothing"
