#!/usr/bin/env bash
# cache_key: the default key is the normalized URL (a cookie makes no difference); a
# template with $cookie_NAME keeps one entry per cookie value; entries stay indexed by
# URL, so a POST still invalidates every key of its URL; a bad template is a config error.
. "$TESTLIB"
plan 11

start_origin o1
mkdir -p "$T/c1" "$T/c2"
read -r p1 p2 <<<"$(free_ports 2)"
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
cache c1 { path $T/c1; max_size 16m; }
cache c2 { path $T/c2; max_size 16m; }
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$p1; proxy_pass app; cache c1; }
server { listen 127.0.0.1:$p2; proxy_pass app; cache c2; cache_key "\$scheme|\$url|\$cookie_lang"; }
CONF
start_proxyd "$T/proxyd.conf" "$p1"
wait_port 127.0.0.1 "$p2"
reqs() { origin_stat "$o1_port" requests; }
xc() { curl -s -D - -o /dev/null "$@" | tr -d '\r' | sed -n 's/^X-Cache: //p'; }
settle() { sleep 0.3; }
Q="/bytes/500?cc=max-age%3D60"

curl -s -o /dev/null -b lang=en "http://127.0.0.1:$p1$Q"
settle
is "$(xc -b lang=fr "http://127.0.0.1:$p1$Q")" HIT "default key: another cookie hits the same entry"

r0=$(reqs)
is "$(xc -b lang=en "http://127.0.0.1:$p2$Q")" MISS "cache_key with \$cookie_lang: en misses"
settle
is "$(xc -b lang=fr "http://127.0.0.1:$p2$Q")" MISS "fr is another key"
settle
is "$(xc -b lang=en "http://127.0.0.1:$p2$Q")" HIT "en hits its own entry"
is "$(xc -b lang=fr "http://127.0.0.1:$p2$Q")" HIT "fr hits its own entry"
is "$(xc "http://127.0.0.1:$p2$Q")" MISS "no cookie is a third key"
is "$(($(reqs) - r0))" 4 "the origin saw one request per key (and this /stats)"

curl -s -o /dev/null -X POST -d x "http://127.0.0.1:$p2$Q"
settle
is "$(xc -b lang=en "http://127.0.0.1:$p2$Q")" MISS "a POST invalidated the en key"
is "$(xc -b lang=fr "http://127.0.0.1:$p2$Q")" MISS "... and the fr key of the same URL"

cat >"$T/bad.conf" <<CONF
cache c1 { path $T/c1; }
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$p1; proxy_pass app; cache c1;
cache_key "\$url\$nosuch"; }
CONF
like "$("$PROXYD" -t -c "$T/bad.conf" 2>&1)" "bad.conf:4: .*unknown variable \"\\\$nosuch\"" \
	"an unknown variable in cache_key: file:line: reason"

cat >"$T/bad2.conf" <<CONF
upstream app { server 127.0.0.1:$o1_port; balance hash "\$url"; }
server { listen 127.0.0.1:$p1; proxy_pass app; }
CONF
like "$("$PROXYD" -t -c "$T/bad2.conf" 2>&1)" "bad2.conf:1: .*known only in cache_key" \
	"\$url is the cache's variable, refused in a hash key"
