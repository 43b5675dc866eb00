#!/usr/bin/env bash
# Access lists by client address and User-Agent, in a reverse and a forward server of one
# daemon: clients from 127.0.0.2 (curl --interface) are denied, 127.0.0.3 and 127.0.0.1
# served; `deny 429 ua ~* "sqlmap|nikto"` answers 429 whatever the case, while `ua ~` is
# case-sensitive; a forward server whose lines all fail denies by default (403), a reverse
# one serves; denied requests never reach the origin; the error log names rule and client.
. "$TESTLIB"
plan 26

start_origin o1
rp=$(free_port_static)
fp=$(free_port_static)
fp2=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream up { server 127.0.0.1:$o1_port; }
server {
	listen 127.0.0.1:$rp;
	proxy_pass up;
	deny src 127.0.0.2;
	deny 429 id=scanners ua ~* "sqlmap|nikto";
	deny ua ~ "BadBot";
}
server {
	listen 127.0.0.1:$fp;
	mode forward;
	deny src 127.0.0.2; deny 429 ua ~* "sqlmap|nikto"; allow all;
}
server {
	listen 127.0.0.1:$fp2;
	mode forward;
	allow src 127.0.0.3;
}
CONF
start_proxyd "$T/proxyd.conf" "$rp"
for p in $fp $fp2; do wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"; done
R="http://127.0.0.1:$rp/"
O="http://127.0.0.1:$o1_port/"

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

# reverse
is "$(curl -s --max-time 5 --interface 127.0.0.3 "$R")" "$o1_uuid" "reverse: 127.0.0.3 served by the origin"
is "$(code --interface 127.0.0.1 "$R")" 200 "reverse: 127.0.0.1 served"
r0=$(origin_stat "$o1_port" requests)
is "$(code --interface 127.0.0.2 "$R")" 403 "reverse: 127.0.0.2 denied with 403"
is "$(code --interface 127.0.0.2 "${R}some/path?x=1")" 403 "reverse: 127.0.0.2 denied on every path"
is "$(code -A 'sqlmap/1.7.2#stable (https://sqlmap.org)' "$R")" 429 "reverse: sqlmap User-Agent gets the line's status 429"
is "$(code -A 'Mozilla/5.00 (Nikto/2.1.6)' "$R")" 429 "reverse: Nikto (mixed case) caught by ~*"
is "$(code -A 'SQLMAP' "$R")" 429 "reverse: SQLMAP (upper case) caught by ~*"
is "$(code -A 'Mozilla/5.0 (X11; Linux x86_64)' "$R")" 200 "reverse: an ordinary browser User-Agent served"
is "$(code -A 'BadBot/2' "$R")" 403 "reverse: ua ~ BadBot matches its exact case"
is "$(code -A 'badbot/2' "$R")" 200 "reverse: ua ~ is case-sensitive (badbot served)"
r1=$(origin_stat "$o1_port" requests)
# one origin_stat request in between: only it reached the origin (plus the 3 served above)
is "$((r1 - r0))" 3 "reverse: the denied requests never reached the origin"

# forward
F="http://127.0.0.1:$fp"
is "$(curl -s --max-time 5 --interface 127.0.0.3 -x "$F" "$O")" "$o1_uuid" "forward: 127.0.0.3 served"
is "$(code --interface 127.0.0.2 -x "$F" "$O")" 403 "forward: 127.0.0.2 denied with 403"
is "$(code --interface 127.0.0.2 -p -x "$F" "https://127.0.0.1:443/")" 000 \
	"forward: 127.0.0.2 cannot open a CONNECT tunnel either (curl fails)"
is "$(curl -s -o /dev/null -w '%{http_connect}' --max-time 5 --interface 127.0.0.2 -p -x "$F" \
	"https://127.0.0.1:443/")" 403 "forward: ... the CONNECT got 403"
is "$(code -A 'Mozilla/5.0 nikto' -x "$F" "$O")" 429 "forward: scanner User-Agent gets 429"
is "$(code -A 'curl/8' -x "$F" "$O")" 200 "forward: other User-Agents served"
F2="http://127.0.0.1:$fp2"
is "$(code --interface 127.0.0.3 -x "$F2" "$O")" 200 "forward, allow src 127.0.0.3 only: 127.0.0.3 served"
is "$(code --interface 127.0.0.1 -x "$F2" "$O")" 403 "forward: no line matched 127.0.0.1, the forward default denies"
like "$(curl -s --max-time 5 --interface 127.0.0.1 -x "$F2" "$O")" "denied by policy \\(default\\)" \
	"forward: the deny page names the default"

# log lines
sleep 0.2
like "$(grep 'client 127.0.0.2: denied by rule' "$T/proxyd.log" | head -1)" \
	"\\[notice\\] \\*[0-9]+ client 127.0.0.2: denied by rule $T/proxyd.conf:7 \\($T/proxyd.conf:7\\): GET http://127.0.0.1:$rp/" \
	"the error log names client, rule id, file:line and URL"
like "$(cat "$T/proxyd.log")" "denied by rule scanners \\(.*proxyd.conf:[0-9]+\\)" "an id= rule is logged by its id"
# three lines on one config line (14) get distinct ids: file:line, file:line#2, ...
like "$(cat "$T/proxyd.log")" "client 127.0.0.2: denied by rule $T/proxyd.conf:14 \\($T/proxyd.conf:14\\): GET http://127.0.0.1:$o1_port/" \
	"forward: the first line on config line 14 has the id file:14"
like "$(cat "$T/proxyd.log")" "client 127.0.0.1: denied by rule $T/proxyd.conf:14#2 \\($T/proxyd.conf:14\\): GET" \
	"forward: the second line on the same config line has the id file:14#2"
like "$(cat "$T/proxyd.log")" "denied by default \\(no rule matched\\): GET http://127.0.0.1:$o1_port/" \
	"the default's denial is logged"
like "$(cat "$T/proxyd.log")" "client 127.0.0.2: denied by rule [^ ]+ \\([^)]*\\): CONNECT https://127.0.0.1/\$" \
	"a denied CONNECT is logged with the URL the rules see (https://host/)"
