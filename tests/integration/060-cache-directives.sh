#!/usr/bin/env bash
# RFC 9111 directives through the real daemon, one behaviour per check, judged by X-Cache
# and the origin's request counter: s-maxage, Expires, response no-cache, public with
# Authorization, must-revalidate and proxy-revalidate against max-stale, immutable
# against a reload, the request's max-stale, min-fresh, max-age=0, no-cache, no-store and
# Pragma: no-cache, and Vary: * (never stored).
. "$TESTLIB"
plan 23

PC="$(dirname "$(dirname "$PROXYD")")/cache/proxyd-cache"
start_origin o1
mkdir -p "$T/cache"
port=$(free_port)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
cache main { path $T/cache; max_size 16m; }
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$port; proxy_pass app; cache main; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
B="http://127.0.0.1:$port"
reqs() { origin_stat "$o1_port" requests; }
xc() { curl -s -D - -o /dev/null "$@" | tr -d '\r' | sed -n 's/^X-Cache: //p'; }
# fetch PATH [curl args]: one request, then wait (3 s at most) until the store lists it
fetch() {
	local p=$1
	shift
	curl -s -o /dev/null "$@" "$B$p"
	for _ in $(seq 1 60); do
		"$PC" -d "$T/cache" ls | grep -qF "$p" && return
		sleep 0.05
	done
}
settle() { sleep 0.3; } # for what is expected not to be stored
httpdate() { date -u -d "$1" '+%a, %d %b %Y %H:%M:%S GMT' | sed 's/ /%20/g; s/,/%2C/g'; }

fetch "/bytes/11?cc=max-age%3D0%2C%20s-maxage%3D60"
is "$(xc "$B/bytes/11?cc=max-age%3D0%2C%20s-maxage%3D60")" HIT \
	"s-maxage=60 wins over max-age=0 in a shared cache"

E1="/bytes/12?h=Expires:%20$(httpdate '+60 seconds')"
fetch "$E1"
is "$(xc "$B$E1")" HIT "Expires a minute ahead: fresh"
E2="/bytes/13?h=Expires:%20$(httpdate '-60 seconds')&h=ETag:%20%22e%22&notmod=1"
fetch "$E2"
is "$(xc "$B$E2")" REVALIDATED "Expires in the past: stale, revalidated"

NC="/bytes/14?cc=no-cache&h=ETag:%20%22n%22&notmod=1"
fetch "$NC"
r0=$(reqs)
is "$(xc "$B$NC")" REVALIDATED "response no-cache: stored, but every use asks the origin"
is "$(($(reqs) - r0))" 2 "... which saw the conditional request (and this /stats)"

AU="/bytes/15?cc=max-age%3D60"
curl -s -o /dev/null -H 'Authorization: Basic dTpw' "$B$AU"
settle
is "$(xc -H 'Authorization: Basic dTpw' "$B$AU")" MISS \
	"a response to a request with Authorization is not stored"
AP="/bytes/16?cc=public%2C%20max-age%3D60"
fetch "$AP" -H 'Authorization: Basic dTpw'
is "$(xc -H 'Authorization: Basic dTpw' "$B$AP")" HIT "... unless it says public"
AS="/bytes/17?cc=s-maxage%3D60"
fetch "$AS" -H 'Authorization: Basic dTpw'
is "$(xc -H 'Authorization: Basic dTpw' "$B$AS")" HIT "... or s-maxage"

# entries a second old, then stale: max-stale decides, unless the entry forbids it
MS="/bytes/18?cc=max-age%3D1"
MR="/bytes/19?cc=max-age%3D1%2C%20must-revalidate"
PR="/bytes/20?cc=max-age%3D1%2C%20proxy-revalidate"
fetch "$MS"
fetch "$MR"
fetch "$PR"
sleep 2.2
is "$(xc -H 'Cache-Control: max-stale=60' "$B$MS")" HIT "request max-stale=60: a stale entry answers"
like "$(curl -s -D - -o /dev/null -H 'Cache-Control: max-stale=60' "$B$MS" | tr -d '\r')" \
	"Cache-Status: proxyd; hit; ttl=-[0-9]+" "... and Cache-Status shows a negative ttl"
is "$(xc -H 'Cache-Control: max-stale' "$B$MS")" HIT "bare max-stale: any staleness"
is "$(xc -H 'Cache-Control: max-stale=0' "$B$MS")" EXPIRED "max-stale=0: not stale ones"
is "$(xc -H 'Cache-Control: max-stale=60' "$B$MR")" EXPIRED "must-revalidate overrides max-stale"
is "$(xc -H 'Cache-Control: max-stale=60' "$B$PR")" EXPIRED "proxy-revalidate too (a shared cache)"

F="/bytes/21?cc=max-age%3D60"
fetch "$F"
is "$(xc -H 'Cache-Control: min-fresh=30' "$B$F")" HIT "min-fresh=30 of 60 s left: served"
is "$(xc -H 'Cache-Control: min-fresh=120' "$B$F")" EXPIRED "min-fresh=120: not fresh enough"
IM="/bytes/22?cc=max-age%3D60%2C%20immutable"
fetch "$IM"
sleep 1.1 # max-age=0 accepts an age of 0
is "$(xc -H 'Cache-Control: max-age=0' "$B$F")" EXPIRED "request max-age=0: the origin is asked"
is "$(xc -H 'Cache-Control: max-age=0' "$B$IM")" HIT "immutable: a reload's max-age=0 is served from the cache"
is "$(xc -H 'Cache-Control: no-cache' "$B$IM")" EXPIRED "... but request no-cache still asks the origin"

PN="/bytes/23?cc=max-age%3D60"
fetch "$PN"
is "$(xc -H 'Pragma: no-cache' "$B$PN")" EXPIRED "Pragma: no-cache (no Cache-Control): the origin is asked"
is "$(xc -H 'Pragma: no-cache' -H 'Cache-Control: max-stale=5' "$B$PN")" HIT \
	"Pragma is ignored when Cache-Control is present"

NS="/bytes/24?cc=max-age%3D60"
curl -s -o /dev/null -H 'Cache-Control: no-store' "$B$NS"
settle
is "$(xc "$B$NS")" MISS "request no-store: the response is not stored"

VS="/bytes/25?cc=max-age%3D60&h=Vary:%20*"
curl -s -o /dev/null "$B$VS"
settle
is "$(xc "$B$VS")" MISS "Vary: * is never stored"
