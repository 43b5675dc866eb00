#!/usr/bin/env bash
# Forward mode privacy and authentication, checked at the origin (/echo shows what it
# received): anonymize standard and strict leave no identifying header and no client
# address; strict sends the configured User-Agent and only allow-listed headers, and a
# cross-origin Referer is dropped; off adds Via and X-Forwarded-For. auth basic: no or a
# wrong password gets 407 with Proxy-Authenticate, the right one passes, the credentials
# never reach the origin, and the user is in the access log.
. "$TESTLIB"
plan 27

start_origin o1
zone="$T/zone"
dns_set "$zone" "app.test A 127.0.0.1"
start_dnsd dns "$zone"
hash=$(openssl passwd -6 'c0rrect horse') || bail "openssl passwd failed"
printf '# test users\nkim:%s\n' "$hash" >"$T/users"
ps=$(free_port_static)
pt=$(free_port_static)
po=$(free_port_static)
pa=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
resolver 127.0.0.1:$dns_port;
server { listen 127.0.0.1:$ps; mode forward; }
server {
	listen 127.0.0.1:$pt; mode forward; anonymize strict;
	anonymize_user_agent "Mozilla/5.0 (proxyd test)";
	anonymize_allow X-Keep;
}
server { listen 127.0.0.1:$po; mode forward; anonymize off; }
server {
	listen 127.0.0.1:$pa; mode forward;
	auth basic realm="Office proxy" file $T/users;
	connect_ports $o1_port;
	access_log $T/access.log;
}
CONF
start_proxyd "$T/proxyd.conf" "$ps"
for p in $pt $po $pa; do wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"; done

CLIENT=127.0.0.5 # the origin must not learn this
U="http://app.test:$o1_port/echo"
send() { # send PROXYPORT: a request full of identifying headers
	curl -s --interface "$CLIENT" -x "http://127.0.0.1:$1" \
		-A 'SecretBrowser/1.0' \
		-H 'Via: 1.1 inner-proxy' -H 'X-Forwarded-For: 10.9.8.7' -H 'Forwarded: for=10.9.8.7' \
		-H 'X-Real-IP: 10.9.8.7' -H 'From: kim@example.com' -H 'Client-IP: 10.9.8.7' \
		-H 'X-Forwarded-Host: intranet' -H 'Proxy-Foo: bar' -H 'X-Custom: 1' -H 'X-Keep: yes' \
		-H 'Accept-Language: ko' -H 'Cookie: a=b' \
		-H "Referer: ${2:-http://elsewhere.example/page}" "$U"
}
for mode in standard strict; do
	[ $mode = standard ] && p=$ps || p=$pt
	got=$(send "$p")
	like "$got" "GET /echo HTTP/1.1" "$mode: the request reached the origin"
	unlike "$got" "(^|[^-])[Vv]ia:|[Xx]-[Ff]orwarded|[Ff]orwarded:|[Xx]-[Rr]eal-[Ii][Pp]|[Ff]rom:|[Cc]lient-[Ii][Pp]|[Pp]roxy-" \
		"$mode: no Via, X-Forwarded-*, Forwarded, X-Real-IP, From, Client-IP, Proxy-*"
	unlike "$got" "$CLIENT|10\\.9\\.8\\.7" "$mode: no client address anywhere"
	like "$got" "[Cc]ookie: a=b" "$mode: Cookie kept"
	like "$got" "[Aa]ccept-[Ll]anguage: ko" "$mode: Accept-Language kept"
done
got=$(send "$ps")
like "$got" "[Uu]ser-[Aa]gent: SecretBrowser/1.0" "standard: User-Agent kept"
like "$got" "X-Custom: 1" "standard: other headers kept"
got=$(send "$pt")
like "$got" "[Uu]ser-[Aa]gent: Mozilla/5.0 \\(proxyd test\\)" "strict: the configured User-Agent"
unlike "$got" "SecretBrowser" "strict: the client's User-Agent is gone"
unlike "$got" "X-Custom" "strict: headers off the allow-list dropped"
like "$got" "X-Keep: yes" "strict: anonymize_allow adds a header"
unlike "$got" "[Rr]eferer" "strict: a cross-origin Referer is dropped"
got=$(send "$pt" "http://app.test:$o1_port/from-here")
like "$got" "[Rr]eferer: http://app.test:$o1_port/from-here" "strict: a same-origin Referer is kept"

got=$(curl -s --interface "$CLIENT" -x "http://127.0.0.1:$po" "$U")
like "$got" "[Vv]ia: 1.1 proxyd" "off: Via added"
like "$got" "X-Forwarded-For: $CLIENT" "off: X-Forwarded-For added"

# auth
A="http://127.0.0.1:$pa"
code=$(curl -s -o /dev/null -w '%{http_code}' -x "$A" "$U")
is "$code" 407 "no credentials: 407"
hdrs=$(curl -s -D - -o /dev/null -x "$A" "$U")
like "$hdrs" "Proxy-Authenticate: Basic realm=\"Office proxy\"" "407 carries Proxy-Authenticate"
code=$(curl -s -o /dev/null -w '%{http_code}' -x "$A" -U 'kim:wrong' "$U")
is "$code" 407 "a wrong password: 407"
got=$(curl -s -x "$A" -U 'kim:c0rrect horse' "$U")
like "$got" "GET /echo HTTP/1.1" "the right password: forwarded"
unlike "$got" "[Pp]roxy-[Aa]uthorization|a2lt" "the credentials never reach the origin"
code=$(curl -s -o /dev/null -w '%{http_code}' -p -x "$A" -U 'kim:c0rrect horse' "http://127.0.0.1:$o1_port/")
is "$code" 200 "CONNECT with the right password"
sleep 0.2
like "$(grep -v ' 407 ' "$T/access.log" | head -1)" "^127.0.0.1 - kim \\[" "the user is in the access log"
