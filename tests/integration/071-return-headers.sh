#!/usr/bin/env bash
# `return CODE [URL|TEXT]` answers every request of a server (the HTTPS redirect:
# return 301 https://$host$request_uri) on a keep-alive connection; `add_header` adds
# fields to relayed responses of the usual statuses, and with `always` to every response,
# proxyd's own errors included.
. "$TESTLIB"
plan 11

start_origin o1
p1=$(free_port_static)
p2=$(free_port_static)
p3=$(free_port_static)
while [ "$p2" = "$p1" ]; do p2=$(free_port_static); done
while [ "$p3" = "$p1" ] || [ "$p3" = "$p2" ]; do p3=$(free_port_static); done
cat >"$T/proxyd.conf" <<CONF
error_log stderr info;
upstream app { server 127.0.0.1:$o1_port; }
server {
	listen 127.0.0.1:$p1;
	return 301 https://\$host\$request_uri;
	add_header Strict-Transport-Security "max-age=63072000" always;
}
server {
	listen 127.0.0.1:$p2;
	proxy_pass app;
	add_header X-Seen yes;
	add_header X-Frame-Options DENY always;
}
server { listen 127.0.0.1:$p3; return 200 "hello \$host from \$remote_addr"; }
CONF
start_proxyd "$T/proxyd.conf" "$p1"

h=$(curl -s -D - -o /dev/null -H 'Host: www.example.com' "http://127.0.0.1:$p1/a/b?c=1")
like "$h" "^HTTP/1.1 301" "return 301"
like "$h" "Location: https://www.example.com/a/b\\?c=1" "Location from \$host\$request_uri"
like "$h" "Strict-Transport-Security: max-age=63072000" "add_header on the redirect"
n=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' "http://127.0.0.1:$p1/x" \
	"http://127.0.0.1:$p1/y" | awk '{ print $1 + $2 }')
is "$n" 1 "two redirects on one keep-alive connection"
is "$(curl -s -H 'Host: t.test' "http://127.0.0.1:$p3/")" "hello t.test from 127.0.0.1" "return 200 with text"
is "$(curl -s -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p3/")" 200 "HEAD to a return"
h=$(curl -s -D - -o /dev/null "http://127.0.0.1:$p2/")
like "$h" "X-Seen: yes" "add_header on a relayed 200"
like "$h" "X-Frame-Options: DENY" "and the always one"
h=$(curl -s -D - -o /dev/null "http://127.0.0.1:$p2/status/404")
unlike "$h" "X-Seen" "no add_header on a 404 without always"
like "$h" "X-Frame-Options: DENY" "always: on a 404 too"
printf 'server { listen 127.0.0.1:1; return 301; }\n' >"$T/bad.conf"
like "$("$PROXYD" -t -c "$T/bad.conf" 2>&1)" "bad.conf:1: .*a redirect needs a URL" "a redirect without a URL is refused"
