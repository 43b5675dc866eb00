#!/usr/bin/env bash
# TLS termination with a throw-away CA made here by the openssl command: curl verifies the
# listener; SNI picks each name's certificate (exact, wildcard, default); TLS 1.1 is
# refused; sessions resume (s_client -sess_out / -sess_in); a reload with a new certificate
# is picked up while an open keep-alive connection carries on; upstreams see
# X-Forwarded-Proto: https. A client whose Finished and first requests come in one TCP
# write is served (read-ahead leftovers). TLS to upstreams: verified against ca=, a wrong CA is a 502
# naming the TLS error, verify=off passes. WebSocket over a TLS listener.
. "$TESTLIB"
plan 24

cd "$T" || bail "no temp dir"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
ec -x509 -days 1 -subj /CN=proxyd-test-ca -keyout ca.key -out ca.pem || bail "no CA"
ec -x509 -days 1 -subj /CN=other-ca -keyout ca2.key -out ca2.pem || bail "no second CA"
leaf() { # leaf NAME SAN [SUBJECT-SUFFIX]: NAME.pem and NAME.key signed by the test CA
	ec -subj "/CN=$1${3:-}" -keyout "$1.key" -out "$1.csr" || bail "no CSR for $1"
	printf 'subjectAltName=%s\n' "$2" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null || bail "cannot sign $1"
}
leaf localhost "DNS:localhost,IP:127.0.0.1"
leaf a.test "DNS:a.test"
leaf wild.b.test "DNS:*.b.test"

start_origin o1
NODE_OK=0
if command -v node >/dev/null 2>&1; then
	export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
	node -e 'require("ws")' 2>/dev/null && NODE_OK=1
fi
if [ "$NODE_OK" = 1 ]; then
	node "$TOP_SRCDIR/tests/ws/ws.js" server >ws.out 2>ws.err &
	PIDS="$PIDS $!"
	for _ in $(seq 1 100); do grep -q '^READY ' ws.out && break; sleep 0.05; done
	wport=$(sed -n 's/^READY port=//p' ws.out)
fi
# a TLS origin: openssl s_server serving files (HTTP/1.0, body to EOF)
mkdir -p www && printf 'hello over tls\n' >www/hello.txt
sport=$(free_port_static)
(cd www && exec openssl s_server -accept "127.0.0.1:$sport" -cert ../localhost.pem \
	-key ../localhost.key -WWW -quiet) >s_server.out 2>&1 </dev/null &
PIDS="$PIDS $!"
wait_port 127.0.0.1 "$sport" || bail "openssl s_server did not start"

read -r port wsport up bad off <<<"$(free_ports 5)"
write_conf() { # write_conf CERT-FOR-LOCALHOST
	cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream app { server 127.0.0.1:$o1_port; keepalive 8; }
upstream ws { server 127.0.0.1:${wport:-1}; }
upstream tlsok { server localhost:$sport tls ca=$T/ca.pem; }
upstream tlsbad { server localhost:$sport tls ca=$T/ca2.pem; }
upstream tlsoff { server localhost:$sport tls verify=off ca=$T/ca2.pem; }
server {
	listen 127.0.0.1:$port tls;
	proxy_pass app;
	tls_certificate $T/$1.pem;
	tls_certificate_key $T/$1.key;
	tls_certificate $T/a.test.pem;
	tls_certificate_key $T/a.test.key;
	tls_certificate $T/wild.b.test.pem;
	tls_certificate_key $T/wild.b.test.key;
}
server { listen 127.0.0.1:$wsport tls; proxy_pass ws;
	tls_certificate $T/localhost.pem; tls_certificate_key $T/localhost.key; }
server { listen 127.0.0.1:$up; proxy_pass tlsok; }
server { listen 127.0.0.1:$bad; proxy_pass tlsbad; }
server { listen 127.0.0.1:$off; proxy_pass tlsoff; }
CONF
}
write_conf localhost
start_proxyd "$T/proxyd.conf" "$port"
H="https://localhost:$port"

is "$(curl -s --cacert ca.pem "$H/")" "$o1_uuid" "curl --cacert to the TLS listener verifies and is served"
like "$(curl -s --cacert ca.pem "$H/headers")" "X-Forwarded-Proto: https" "the upstream sees X-Forwarded-Proto: https"
subj() { # subj NAME: the subject of the certificate served for SNI NAME
	openssl s_client -connect "127.0.0.1:$port" -servername "$1" </dev/null 2>/dev/null |
		sed -n 's/^subject=//p'
}
like "$(subj a.test)" "CN ?= ?a.test" "SNI a.test gets its certificate"
like "$(subj x.b.test)" "CN ?= ?wild.b.test" "SNI x.b.test gets the wildcard certificate"
like "$(subj unknown.test)" "CN ?= ?localhost" "an unknown name gets the default (first) certificate"
is "$(curl -s --cacert ca.pem --resolve "a.test:$port:127.0.0.1" "https://a.test:$port/")" \
	"$o1_uuid" "curl --resolve a.test verifies a.test's certificate"
out=$(openssl s_client -connect "127.0.0.1:$port" -tls1_1 </dev/null 2>&1)
unlike "$out" "Cipher is [A-Z]" "TLS 1.1 is refused"
(sleep 0.5) | openssl s_client -connect "127.0.0.1:$port" -servername a.test -tls1_2 \
	-sess_out sess.pem >s1.out 2>&1
(sleep 0.5) | openssl s_client -connect "127.0.0.1:$port" -servername a.test -tls1_2 \
	-sess_in sess.pem >s2.out 2>&1
like "$(cat s2.out)" "^Reused," "TLS 1.2 session resumption (s_client -sess_in: Reused)"
(sleep 0.5) | openssl s_client -connect "127.0.0.1:$port" -servername a.test \
	-sess_out sess13.pem >s3.out 2>&1
(sleep 0.5) | openssl s_client -connect "127.0.0.1:$port" -servername a.test \
	-sess_in sess13.pem >s4.out 2>&1
like "$(cat s4.out)" "^Reused," "TLS 1.3 resumption by ticket"
like "$(grep -c 'TLS handshake failed' proxyd.log)" "^[1-9]" "a failed handshake is one info line"

# The handshake's last flight and pipelined requests in one write: OpenSSL reads ahead
# through the handshake, and what came with the Finished must be served without waiting
# for more bytes from the client (tests/tls/flight.js).
if [ "$NODE_OK" = 1 ]; then
	fl() { timeout 10 node "$TOP_SRCDIR/tests/tls/flight.js" "$port" ca.pem "$@" 2>&1; }
	is "$(fl TLSv1.3 0)" "RESPONSES 3 RESUMED no BODY none" \
		"TLS 1.3: Finished + 3 pipelined requests in one write, all answered"
	is "$(fl TLSv1.3 50000)" "RESPONSES 4 RESUMED no BODY ok" \
		"TLS 1.3: the same with a 50000-byte POST body among them"
	is "$(fl TLSv1.2 0)" "RESPONSES 3 RESUMED yes BODY none" \
		"TLS 1.2 resumed: Finished + 3 pipelined requests in one write, all answered"
	is "$(fl TLSv1.2 50000)" "RESPONSES 4 RESUMED yes BODY ok" \
		"TLS 1.2 resumed: the same with a 50000-byte POST body"
else
	for _ in 1 2 3 4; do pass "# SKIP node is not installed"; done
fi

# reload with a new certificate while a keep-alive connection is open
leaf localhost2 "DNS:localhost,IP:127.0.0.1" "/O=v2"
curl -s --cacert ca.pem -o slow.body -o second.body -w '%{http_code} %{num_connects}\n' \
	"$H/?delay=1500" "$H/" >ka.out &
kpid=$!
sleep 0.5
write_conf localhost2
kill -HUP "$PROXYD_PID"
wait "$kpid"
is "$(tr '\n' ' ' <ka.out)" "200 1 200 0 " "the open keep-alive connection carries on across the reload"
subject=""
for _ in $(seq 1 40); do
	subject=$(subj localhost)
	case "$subject" in *v2*) break ;; esac
	sleep 0.1
done
like "$subject" "O ?= ?v2" "a new connection gets the reloaded certificate"

# TLS to upstreams
is "$(curl -s "http://127.0.0.1:$up/hello.txt")" "hello over tls" "TLS upstream verified with ca="
h=$(curl -s -D - -o /dev/null "http://127.0.0.1:$bad/hello.txt")
like "$h" "^HTTP/1.1 502" "a wrong CA: 502"
like "$h" "Proxy-Status: proxyd; error=tls_certificate_error" "Proxy-Status names the TLS error"
like "$(grep 'TLS certificate verification failed' proxyd.log)" "unable to get local issuer certificate" \
	"the log says why"
is "$(curl -s "http://127.0.0.1:$off/hello.txt")" "hello over tls" "verify=off passes"

if [ "$NODE_OK" = 1 ]; then
	out=$(node "$TOP_SRCDIR/tests/ws/ws.js" client "wss://localhost:$wsport/" --ca ca.pem \
		--count 50 --size 4000)
	like "$out" "^OK 50 200000" "WebSocket over a TLS listener: messages echo"
	like "$out" "CLOSED 1000" "and close"
else
	pass "# SKIP node-ws is not installed"
	pass "# SKIP node-ws is not installed"
fi
printf 'server { listen 127.0.0.1:1 tls; return 200; }\n' >bad.conf
like "$("$PROXYD" -t -c bad.conf 2>&1)" "needs a \"tls_certificate\"" "listen tls without a certificate is refused"
