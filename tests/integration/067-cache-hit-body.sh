#!/usr/bin/env bash
# Cache hits with large bodies, through the real daemon: on a plain listener the body is
# written straight from the cache's map (what the socket does not take at once is copied
# before the read transaction ends), on a TLS listener it is copied. Slow clients in
# parallel, a pipelined pair of hits and HEAD must all get exactly the origin's bytes,
# with the origin's request counter showing that none of it came from there.
. "$TESTLIB"
plan 11

cd "$T" || bail "no temp dir"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
ec -x509 -days 1 -subj /CN=proxyd-test-ca -keyout ca.key -out ca.pem || bail "no CA"
ec -subj /CN=localhost -keyout localhost.key -out localhost.csr || bail "no CSR"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >localhost.ext
openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
	-extfile localhost.ext -out localhost.pem 2>/dev/null || bail "cannot sign the leaf"

start_origin o1
mkdir -p "$T/cache"
read -r port tport <<<"$(free_ports 2)"
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
cache main { path $T/cache; max_size 64m; }
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass app; cache main; }
server {
	listen 127.0.0.1:$tport tls;
	tls_certificate $T/localhost.pem;
	tls_certificate_key $T/localhost.key;
	proxy_pass app;
	cache main;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
wait_port 127.0.0.1 "$tport" || bail "no TLS listener"
B="http://127.0.0.1:$port"
TB="https://127.0.0.1:$tport"
reqs() { origin_stat "$o1_port" requests; }
sum() { md5sum | cut -d' ' -f1; }
BIG="/bytes/5000000?cc=max-age%3D600"
SMALL="/bytes/1024?cc=max-age%3D600"
want_big=$(curl -s "http://127.0.0.1:$o1_port/bytes/5000000" | sum)
want_small=$(curl -s "http://127.0.0.1:$o1_port/bytes/1024" | sum)

fill() { # fill URL [curl options]: until the URL is a hit (the writer commits in the background)
	local url=$1 x=""
	shift
	for _ in $(seq 1 50); do
		x=$(curl -s "$@" -D - -o /dev/null "$url" | tr -d '\r' | sed -n 's/^X-Cache: //p')
		[ "$x" = HIT ] && break
		sleep 0.1
	done
	echo "$x"
}
is "$(fill "$B$BIG")" HIT "the 5 MB object is stored"
fill "$B$SMALL" >/dev/null
# https:// URLs are other keys
is "$(fill "$TB$BIG" --cacert ca.pem)" HIT "... and through the TLS listener"
r0=$(reqs)

is "$(curl -s "$B$BIG" | sum)" "$want_big" "a plain hit: the origin's 5 MB"

# slow readers: the socket takes a little at a time, the rest waits in the output buffer
for i in 1 2 3 4; do
	curl -s --max-time 30 --limit-rate 4M "$B$BIG" | sum >"slow$i.sum" &
	SLOW="${SLOW:-} $!"
done
# shellcheck disable=SC2086
wait $SLOW
is "$(sort -u slow*.sum)" "$want_big" "four slow clients in parallel: each the origin's 5 MB"

got=$(printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\nGET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' \
	"$BIG" "$port" "$SMALL" "$port" | raw 127.0.0.1 "$port" | tr -d '\r' | grep -a -c "^X-Cache: HIT$")
is "$got" 2 "two pipelined hits on one connection"
is "$(printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\nGET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' \
	"$BIG" "$port" "$SMALL" "$port" | raw 127.0.0.1 "$port" | tail -c 1024 | sum)" "$want_small" \
	"... the second body follows the first whole"
is "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "$B$BIG")" "200 0" \
	"HEAD of the large entry: no body"

is "$(curl -s --cacert ca.pem "$TB$BIG" | sum)" "$want_big" "a TLS hit: the origin's 5 MB"
is "$(curl -s --max-time 30 --limit-rate 8M --cacert ca.pem "$TB$BIG" | sum)" "$want_big" \
	"a slow TLS client: the origin's 5 MB"

is "$(($(reqs) - r0))" 1 "none of it came from the origin (the one request is this /stats)"
unlike "$(cat "$T/proxyd.log")" "cache entry gone|out of memory" "no entry went missing"
