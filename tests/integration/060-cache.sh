#!/usr/bin/env bash
# The HTTP cache through the real daemon, checked with the origin's request counter and
# X-Cache: a miss is stored while it streams and then served without the origin; HEAD from
# a GET entry; a conditional request answered 304 from the cache; no-store, private and
# Set-Cookie responses are not stored; an expired entry is fetched again; Vary keeps
# variants apart; a POST invalidates the URL; cache_bypass and no_cache rules;
# only-if-cached; a truncated response is never stored; proxyd-cache sees, verifies and
# purges entries while the daemon runs; an unopenable cache directory means uncached.
. "$TESTLIB"
plan 36

PC="$(dirname "$PROXYD")/../cache/proxyd-cache"
[ -x "$PC" ] || PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"
start_origin o1
mkdir -p "$T/cache"
read -r port bad <<<"$(free_ports 2)"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
cache main { path $T/cache; max_size 64m; }
cache broken { path $T/no-such-dir; }
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
server {
	listen 127.0.0.1:$port;
	proxy_pass app;
	cache main;
	cache_bypass cookie nocache;
	no_cache arg nostore;
	allow id=purgers method PURGE src 127.0.0.1;
	access_log $T/access.log;
}
server { listen 127.0.0.1:$bad; proxy_pass app; cache broken; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
reqs() { origin_stat "$o1_port" requests; }
xc() { curl -s -D - -o /dev/null "$@" | tr -d '\r' | sed -n 's/^X-Cache: //p'; }
settle() { sleep 0.3; } # the store commits in its writer thread

U="$B/bytes/3000?cc=max-age%3D60"
r0=$(reqs)
is "$(xc "$U")" MISS "first request: MISS"
settle
is "$(xc "$U")" HIT "second: HIT"
is "$(curl -s "$U" | md5sum)" "$(curl -s "http://127.0.0.1:$o1_port/bytes/3000" | md5sum)" \
	"the cached body is the origin's"
r1=$(reqs)
is $((r1 - r0)) 3 "hits never reach the origin (the miss, the direct request, one /stats)"
like "$(curl -s -D - -o /dev/null "$U" | tr -d '\r')" "Cache-Status: proxyd; hit; ttl=[0-9]+" \
	"Cache-Status on a hit"
is "$(curl -s -I -o /dev/null -w '%{http_code}' "$U")" 200 "HEAD answered from the GET entry"
is "$(reqs)" "$((r1 + 1))" "... without the origin (the one request is this /stats)"

E="$B/bytes/100?cc=max-age%3D60&h=ETag:%20%22v1%22"
curl -s -o /dev/null "$E"
settle
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "v1"' "$E")" 304 \
	"If-None-Match answered 304 from the cache"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "v2"' "$E")" 200 \
	"a different ETag gets the entry"

for cc in no-store private; do
	V="$B/bytes/10?cc=$cc"
	curl -s -o /dev/null "$V"
	settle
	is "$(xc "$V")" MISS "Cache-Control: $cc is not stored"
done
V="$B/bytes/10?cc=max-age%3D60&h=Set-Cookie:%20a%3Db"
curl -s -o /dev/null "$V"
settle
is "$(xc "$V")" MISS "a response with Set-Cookie is not stored"

X="$B/bytes/20?cc=max-age%3D3"
curl -s -o /dev/null "$X"
settle
is "$(xc "$X")" HIT "max-age=3: fresh at first"
sleep 3.5
is "$(xc "$X")" EXPIRED "then fetched again (EXPIRED)"

# revalidation: a stale entry with an ETag is asked for with If-None-Match; a 304 renews it
RV="$B/bytes/500?cc=max-age%3D2&h=ETag:%20%22r1%22&notmod=1"
curl -s -o /dev/null "$RV"
settle
sleep 2.5
h=$(curl -s -D - -o "$T/rv.body" "$RV" | tr -d '\r')
like "$h" "X-Cache: REVALIDATED" "a stale entry is revalidated (the origin answered 304)"
like "$h" "^HTTP/1.1 200" "and the client gets the stored 200"
is "$(wc -c <"$T/rv.body")" 500 "with the stored body"
settle
is "$(xc "$RV")" HIT "the 304 renewed its freshness"

Y="$B/bytes/30?cc=max-age%3D60&h=Vary:%20Accept-Encoding"
curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$Y"
settle
is "$(xc -H 'Accept-Encoding: identity' "$Y")" MISS "Vary: another Accept-Encoding is a miss"
settle
is "$(xc -H 'Accept-Encoding: gzip' "$Y")" HIT "and each variant hits on its own"

P="$B/echo?cc=max-age%3D60"
curl -s -o /dev/null "$P"
settle
is "$(xc "$P")" HIT "stored before the POST"
curl -s -o /dev/null --data 'x=1' "$P"
settle
is "$(xc "$P")" MISS "a POST to the URL invalidates it"

is "$(xc -b 'nocache=1' "$U")" BYPASS "cache_bypass cookie nocache skips the lookup"
N="$B/bytes/40?cc=max-age%3D60&nostore=1"
curl -s -o /dev/null "$N"
settle
is "$(xc "$N")" MISS "no_cache arg nostore: never stored"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Cache-Control: only-if-cached' "$B/bytes/50")" 504 \
	"only-if-cached and not cached: 504"

R="$B/reset/2000?cc=max-age%3D60"
curl -s -o /dev/null "$R"
settle
is "$(xc "$R")" MISS "a response cut by a reset is never stored"

like "$("$PC" -d "$T/cache" ls)" "http://127.0.0.1:$port/bytes/3000\\?cc=max-age%3D60" \
	"proxyd-cache ls sees the entry while the daemon runs"
"$PC" -d "$T/cache" verify >/dev/null
is "$?" 0 "proxyd-cache verify: clean"
"$PC" -d "$T/cache" purge "http://127.0.0.1:$port/bytes/3000?cc=max-age%3D60" >/dev/null
is "$(xc "$U")" MISS "after proxyd-cache purge: a miss"
like "$(cat "$T/proxyd.log")" "cache \"broken\": .*serving uncached" "an unopenable cache is logged"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bad/bytes/10?cc=max-age%3D60")" 200 \
	"and its server serves uncached"

# PURGE, allowed by an access-list line
curl -s -o /dev/null "$U"
settle
is "$(curl -s -X PURGE -o /dev/null -w '%{http_code}' "$U")" 200 "PURGE of a cached URL: 200"
settle
is "$(xc "$U")" MISS "and it is gone"
is "$(curl -s -X PURGE -o /dev/null -w '%{http_code}' "$B/not/cached")" 404 "PURGE of an uncached URL: 404"
is "$(curl -s -X PURGE -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bad/x")" 405 \
	"no access-list line allows it: 405"
like "$(cat "$T/access.log")" '" 200 [0-9]+ "-" "[^"]*" cache=HIT' "the access log says what the cache did"
