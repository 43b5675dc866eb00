#!/usr/bin/env bash
# Forward mode with real clients: curl -x for GET, HEAD, POST, chunked uploads and
# keep-alive reuse; CONNECT tunnels (curl -p) to a TLS origin whose certificate curl
# verifies, to allowed ports only; 1 GiB through a tunnel with a small RSS; names from a
# DNS responder on loopback, an unknown name answered 502 at once; origin-form refused;
# deny_private_destinations; the tunnel's access-log line.
. "$TESTLIB"
plan 30

start_origin o1
start_origin o6 -a ::1
zone="$T/zone"
dns_set "$zone" "app.test A 127.0.0.1
nx.test NXDOMAIN
ten.test A 10.0.0.1"
start_dnsd dns "$zone"

# a throw-away CA and a certificate for localhost, made now (nothing secret committed)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=proxyd-test-ca -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null ||
	bail "cannot make a CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
	-keyout "$T/srv.key" -out "$T/srv.csr" 2>/dev/null || bail "cannot make a CSR"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
	-days 1 -extfile "$T/ext" -out "$T/srv.pem" 2>/dev/null || bail "cannot sign"
tls_port=$(free_port_static)
openssl s_server -accept "127.0.0.1:$tls_port" -cert "$T/srv.pem" -key "$T/srv.key" -www \
	-quiet >"$T/s_server.out" 2>&1 </dev/null &
PIDS="$PIDS $!"
wait_port 127.0.0.1 "$tls_port" || bail "openssl s_server did not start"

port=$(free_port_static)
port2=$(free_port_static)
while [ "$port2" = "$port" ]; do port2=$(free_port_static); done
port3=$(free_port_static)
while [ "$port3" = "$port" ] || [ "$port3" = "$port2" ]; do port3=$(free_port_static); done
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
resolver 127.0.0.1:$dns_port;
server {
	listen 127.0.0.1:$port;
	mode forward;
	anonymize off;
	connect_ports 443 $tls_port $o1_port $o6_port;
	access_log $T/access.log;
}
server {
	listen 127.0.0.1:$port2;
	mode forward;
	deny_private_destinations on;
}
server {
	listen 127.0.0.1:$port3;
	mode forward;
	deny id=no-ten dst 10.0.0.0/8;
	allow all;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
P="http://127.0.0.1:$port"
O="http://127.0.0.1:$o1_port"

is "$(curl -s -x "$P" "$O/")" "$o1_uuid" "GET through the forward proxy"
is "$(curl -s -o /dev/null -w '%{http_code}' -I -x "$P" "$O/bytes/100")" 200 "HEAD"
echo_out=$(curl -s -x "$P" --data-binary 'hello forward' "$O/echo")
like "$echo_out" "body-length: 13" "POST with a body"
like "$echo_out" "POST /echo HTTP/1.1" "the origin gets origin-form"
head -c 300000 /dev/urandom >"$T/up.bin"
chunk_out=$(curl -s -x "$P" -H 'Transfer-Encoding: chunked' --data-binary @"$T/up.bin" "$O/echo")
like "$chunk_out" "body-length: 300000" "chunked upload"
unlike "$echo_out" "[Pp]roxy-[Cc]onnection" "Proxy-Connection is not forwarded"
c0=$(origin_stat "$o1_port" connections)
curl -s -x "$P" "$O/" "$O/" "$O/" "$O/" >/dev/null
c1=$(origin_stat "$o1_port" connections)
# 4 requests plus one origin_stat connection: reuse means at most 2 new connections
[ $((c1 - c0)) -le 2 ]
ok $? "keep-alive reuse of origin connections ($c0 -> $c1)"
is "$(curl -s -x "$P" "http://app.test:$o1_port/")" "$o1_uuid" "a name served by the DNS responder"
t0=$(date +%s%N)
code=$(curl -s -o "$T/nx.body" -w '%{http_code}' -x "$P" "http://nx.test/")
t1=$(date +%s%N)
is "$code" 502 "an unknown name: 502"
[ $(((t1 - t0) / 1000000)) -lt 1000 ]
ok $? "within a second ($(((t1 - t0) / 1000000)) ms)"
like "$(cat "$T/nx.body")" "<p>host not found \\(origin nx.test:80\\)</p>" \
	"with a body naming the reason"
like "$(grep 'nx.test' "$T/proxyd.log")" "host not found \\(origin nx.test:80\\)" \
	"the error log names the reason and the origin"
is "$(curl -s -o /dev/null -w '%{http_code}' "$P/")" 400 "origin-form to a forward server: 400"
is "$(curl -s -o /dev/null -w '%{http_code}' -x "$P" "ftp://127.0.0.1/")" 400 "a scheme other than http: 400"

# CONNECT
out=$(curl -s -p -x "$P" --cacert "$T/ca.pem" "https://localhost:$tls_port/" 2>&1)
like "$out" "s_server" "CONNECT to a TLS origin; curl verified its certificate"
code=$(curl -s -o /dev/null -w '%{http_connect}' -p -x "$P" "https://127.0.0.1:$(dead_port)/")
is "$code" 403 "CONNECT to a port not in connect_ports: 403"
# bytes sent right after the CONNECT head are not lost
got=$(printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
	"$o1_port" "$o1_port" | raw 127.0.0.1 "$port")
like "$got" "200 Connection established" "CONNECT answered 200"
like "$got" "$o1_uuid" "a request pipelined after the CONNECT head went through"
sleep 0.2
like "$(grep CONNECT "$T/access.log" | tail -1)" "\"CONNECT 127.0.0.1:$o1_port HTTP/1.1\" 200 [0-9]+ .* tunnel=[0-9.]+s up=[0-9]+ down=[0-9]+" \
	"the access log has the tunnel's duration and bytes each way"

# 1 GiB through a tunnel: splice keeps it out of user space
GIB=1073741824
curl -s -p -x "$P" -o /dev/null -w '%{size_download}' "$O/bytes/$GIB" >"$T/gib.size" &
cpid=$!
max=0
while kill -0 "$cpid" 2>/dev/null; do
	r=$(rss_kb "$PROXYD_PID")
	[ "$r" -gt "$max" ] && max=$r
	sleep 0.05
done
wait "$cpid"
is "$(cat "$T/gib.size")" "$GIB" "1 GiB through a CONNECT tunnel"
[ "$max" -gt 0 ] && [ "$max" -lt 65536 ]
ok $? "proxyd's RSS stayed under 64 MiB ($max KiB)"

# deny_private_destinations
P2="http://127.0.0.1:$port2"
is "$(curl -s -o /dev/null -w '%{http_code}' -x "$P2" "$O/")" 403 "deny_private_destinations: 127.0.0.1 refused"
is "$(curl -s -o /dev/null -w '%{http_code}' -x "$P2" "http://169.254.169.254/latest/meta-data/")" 403 \
	"deny_private_destinations: the metadata address refused"
is "$(curl -s -o /dev/null -w '%{http_code}' -x "$P2" "http://ten.test/")" 403 \
	"deny_private_destinations: a name resolving to 10.0.0.1 refused"
is "$(curl -s -o /dev/null -w '%{http_connect}' -p -x "$P2" "https://127.0.0.1:443/")" 403 \
	"deny_private_destinations: tunnels too"
like "$(grep 'ten.test' "$T/proxyd.log")" "ten.test resolves to a private address: denied" \
	"the refusal is logged with the address class"

# an access-list rule on destination addresses sees the resolved address of a name
P3="http://127.0.0.1:$port3"
is "$(curl -s -o /dev/null -w '%{http_code}' -x "$P3" "http://ten.test/")" 403 \
	"deny dst 10.0.0.0/8 catches a name that resolves into it"
is "$(curl -s -o /dev/null -w '%{http_code}' -x "$P3" "http://app.test:$o1_port/")" 200 \
	"and lets other names through"

# IPv6 literals, as a URI host and as a CONNECT authority
is "$(curl -s -g -x "$P" "http://[::1]:$o6_port/")" "$o6_uuid" "an IPv6 literal origin"
got=$(printf 'CONNECT [::1]:%s HTTP/1.1\r\nHost: [::1]:%s\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
	"$o6_port" "$o6_port" | raw 127.0.0.1 "$port")
like "$got" "$o6_uuid" "CONNECT to an IPv6 literal"
