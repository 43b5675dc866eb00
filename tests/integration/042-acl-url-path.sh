#!/usr/bin/env bash
# URL and path rules see the normalized path, so encodings cannot slip past them:
# `deny url ~ "\.exe$"` catches /x.exe but not /x.exe?a=1 or /x.exe.txt, and also
# /setup%2Eexe (an unreserved escape is decoded); /a/%2e%2e/admin, //admin, /./admin
# and /b/../admin are all caught by `deny path ~ ^/admin` (curl --path-as-is sends them
# as written), /ADMIN only by a `~*` rule; an invalid escape gets 400; the origin gets the
# request as received (not normalized). Forward and reverse.
. "$TESTLIB"
plan 22

start_origin o1
rp=$(free_port_static)
fp=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream up { server 127.0.0.1:$o1_port; }
server {
	listen 127.0.0.1:$rp;
	proxy_pass up;
	deny id=exe url ~ "\\.exe\$";
	deny id=admin path ~ ^/admin;
	deny id=secret path ~* ^/secret;
	deny id=q url ~ "[?&]debug=1(&|\$)";
}
server {
	listen 127.0.0.1:$fp;
	mode forward;
	deny id=exe url ~ "^http://[^/]*/.*\\.exe\$";
	deny id=admin path ~ ^/admin;
	allow all;
}
CONF
start_proxyd "$T/proxyd.conf" "$rp"
wait_port 127.0.0.1 "$fp" || bail "proxyd does not listen on $fp"

R="http://127.0.0.1:$rp"
rc() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --path-as-is "$R$1"; }
is "$(rc /files/setup.exe)" 403 "url ~ \\.exe\$: /files/setup.exe denied"
is "$(rc /files/setup%2Eexe)" 403 "... also with the dot percent-encoded (%2E is unreserved, decoded)"
is "$(rc /files/setup.exe?a=1)" 404 "... not with a query after it (the url includes the query)"
is "$(rc /files/setup.exe.txt)" 404 "... not /files/setup.exe.txt"
is "$(rc /admin)" 403 "path ~ ^/admin: /admin denied"
is "$(rc /a/%2e%2e/admin)" 403 "/a/%2e%2e/admin is /admin"
is "$(rc /a/%2E%2E/admin/x)" 403 "/a/%2E%2E/admin/x is /admin/x"
is "$(rc //admin)" 403 "//admin is /admin"
is "$(rc /./admin)" 403 "/./admin is /admin"
is "$(rc /b/../admin)" 403 "/b/../admin is /admin"
is "$(rc /%61dmin)" 403 "/%61dmin (an encoded letter) is /admin"
is "$(rc /ADMIN)" 404 "/ADMIN is not caught by path ~ (case-sensitive; the origin answers 404)"
is "$(rc /SECRET/x)" 403 "/SECRET/x is caught by path ~* ^/secret"
is "$(rc /a/../Secret)" 403 "/a/../Secret is caught by path ~* ^/secret"
is "$(rc /adminx/../public)" 404 "/adminx/../public is /public: not denied"
is "$(rc '/x?debug=1')" 403 "a url rule sees the query"
is "$(rc /a/%zz)" 400 "an invalid escape gets 400"
# the origin answers /echo only: had proxyd forwarded the normalized /echo, it would get 200
is "$(rc /p/%2e%2e/echo)" 404 \
	"an allowed request is forwarded as received, not normalized (/p/%2e%2e/echo is not /echo)"
F="http://127.0.0.1:$fp"
O="http://127.0.0.1:$o1_port"
fc() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --path-as-is -x "$F" "$O$1"; }
is "$(fc /dl/tool.exe)" 403 "forward: url rule denies /dl/tool.exe"
is "$(fc /x/%2e%2e//admin)" 403 "forward: /x/%2e%2e//admin is /admin"
is "$(fc /ADMIN)" 404 "forward: /ADMIN passes path ~ ^/admin"
is "$(curl -s --max-time 5 -x "$F" "$O/")" "$o1_uuid" "forward: other paths served"
