#!/usr/bin/env bash
# proxyd --explain: the decision, the deciding rule (id and file:line), every earlier
# rule with the first matcher that failed, and for an allowed request the head exactly
# as forwarded (anonymized) and where it goes; exit status 0 allow, 1 deny, 2 bad input.
# Then the admin endpoint's GET /acl counts hits per rule of a running daemon.
. "$TESTLIB"
plan 21

start_origin o1
printf 'bad.example\n.evil.test\n' >"$T/blocked.txt"
port=$(free_port_static)
rport=$(free_port_static)
aport=$(free_port_static)
while [ "$rport" = "$port" ]; do rport=$(free_port_static); done
while [ "$aport" = "$port" ] || [ "$aport" = "$rport" ]; do aport=$(free_port_static); done
cat >"$T/proxyd.conf" <<CONF
error_log stderr info;
set blocked domains file $T/blocked.txt;
set office cidrs 10.0.0.0/8 127.0.0.0/8;
server {
	listen 127.0.0.1:$port;
	mode forward;
	anonymize strict;
	anonymize_user_agent "Corp/1";
	deny id=blocked-sites dst in blocked;
	deny 429 ua ~* "sqlmap|nikto";
	allow id=office-hours src in office time mon-fri 08:00-18:00 Europe/Berlin;
	allow id=loopback src 127.0.0.1;
}
upstream app { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$rport; proxy_pass app; deny id=bots ua ~ badbot; }
admin { listen 127.0.0.1:$aport; }
CONF
C="$T/proxyd.conf"
ex() { "$PROXYD" -c "$C" --explain "$1"; }

out=$(ex 'src=10.1.2.3 ua="curl/8.5" url=http://example.com/x method=GET time=2026-11-27T09:30+01:00 user=kim')
rc=$?
is "$rc" 0 "allowed: exit 0"
like "$out" "decision: allow by rule office-hours \\([^)]*proxyd.conf:11\\)" "the deciding rule, id and file:line"
like "$out" "no match: deny blocked-sites \\([^)]*proxyd.conf:9\\): dst in blocked" \
	"an earlier rule with the matcher that failed"
like "$out" "no match: deny [^ ]*proxyd.conf:10: ua ~\\* \"sqlmap\\|nikto\"" "a rule without id= is named file:line"
like "$out" "request as forwarded:" "the forwarded head follows"
like "$out" "GET /x HTTP/1.1" "in origin form"
like "$out" "User-Agent: Corp/1" "after anonymization (strict User-Agent)"
unlike "$out" "curl/8.5" "the client's User-Agent is not forwarded"
like "$out" "to: origin example.com:80" "and where it goes"

out=$(ex 'src=10.1.2.3 url=http://www.evil.test/ time=2026-11-27T09:30+01:00')
rc=$?
is "$rc" 1 "denied: exit 1"
like "$out" "decision: deny 403 by rule blocked-sites \\([^)]*proxyd.conf:9\\)" "a blocked site"
unlike "$out" "request as forwarded" "no head for a denied request"
out=$(ex 'src=10.1.2.3 url=http://example.com/ time=2026-11-28T09:30Z')
like "$out" "no match: allow office-hours \\([^)]*proxyd.conf:11\\): time mon-fri 08:00-18:00 Europe/Berlin" \
	"outside the window the time matcher fails"
like "$out" "decision: deny 403 by the default" "and the forward default denies"
out=$(ex "server=127.0.0.1:$rport url=http://site.test/a?b=1 ua=x")
like "$out" "X-Forwarded-For: 127.0.0.1" "reverse server: the head with X-Forwarded-For"
like "$out" "to: upstream \"app\", peer 127.0.0.1:$o1_port" "and the peer it would go to"
ex 'bogus' >/dev/null
is "$?" 2 "bad input: exit 2"

# counters of a running daemon
start_proxyd "$C" "$port"
wait_port 127.0.0.1 "$aport" || bail "no admin listener"
for _ in 1 2 3; do curl -s -o /dev/null -x "http://127.0.0.1:$port" "http://www.evil.test/"; done
curl -s -o /dev/null -x "http://127.0.0.1:$port" -A sqlmap "http://127.0.0.1:$o1_port/"
curl -s -o /dev/null -A badbot "http://127.0.0.1:$rport/"
curl -s -o /dev/null "http://127.0.0.1:$rport/"
json=$(curl -s "http://127.0.0.1:$aport/acl")
like "$json" '"id":"blocked-sites","file":"[^"]*proxyd.conf","line":9,"action":"deny","status":403,"hits":3' \
	"GET /acl: hits of a rule"
like "$json" '"line":10,"action":"deny","status":429,"hits":1' "the 429 line counted once"
like "$json" '"id":"bots",[^}]*"hits":1' "the reverse server's rule"
like "$json" '"mode":"reverse","rules":\[[^]]*\],"default":\{"action":"allow","hits":1\}' \
	"the default's hits"
