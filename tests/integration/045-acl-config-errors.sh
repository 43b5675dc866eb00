#!/usr/bin/env bash
# Errors in access rules and sets: `proxyd -t` reports a bad regex and an undefined set as
# file:line:column: reason (the column of the offending word) and exits non-zero, and a
# bad set file as path:line: reason. A SIGHUP whose set file is broken keeps the running
# policy (requests are still decided by the old rules) and logs the error; a later good
# reload applies the new set.
. "$TESTLIB"
plan 16

start_origin o1
port=$(free_port_static)

# check_t BODY: a one-server config with BODY on line 5 (after a tab); prints proxyd -t's
# stderr and sets RC
check_t() {
	printf 'workers 1;\nset ok domains a.test b.test;\nupstream up { server 127.0.0.1:%s; }\nserver {\n\t%s\n\tlisten 127.0.0.1:%s; proxy_pass up;\n}\n' \
		"$o1_port" "$1" "$port" >"$T/t.conf"
	RC=0
	"$PROXYD" -t -c "$T/t.conf" 2>&1 >/dev/null || RC=$?
}
out=$(check_t 'deny url ~ "a(b";'; echo "rc=$RC")
like "$out" "^proxyd: $T/t.conf:5:13: regex error at offset 3: missing closing parenthesis" \
	"bad regex: file:line:column (the regex's column) and reason"
unlike "$out" "rc=0$" "bad regex: proxyd -t exits non-zero"
out=$(check_t 'deny   src in nosuch;'; echo "rc=$RC")
like "$out" "^proxyd: $T/t.conf:5:16: set \"nosuch\" is not defined" \
	"undefined set: file:line:column (the set name's column) and reason"
unlike "$out" "rc=0$" "undefined set: proxyd -t exits non-zero"
out=$(check_t 'deny ua ~* "[z-a]";'; echo "rc=$RC")
like "$out" "^proxyd: $T/t.conf:5:13: regex error .*range out of order" "a bad ~* regex too"
out=$(check_t 'deny 200 all;'; echo "rc=$RC")
like "$out" "$T/t.conf:5:.*400\\.\\.599" "a deny status outside 400..599 is refused"
out=$(check_t 'deny dst in ok; allow all;'; echo "rc=$RC")
like "$out" "rc=0$" "control: the same config with valid lines passes proxyd -t"

# reload with a broken set file
printf 'old.test\n' >"$T/blocked.lst"
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
set blocked domains file $T/blocked.lst;
upstream up { server 127.0.0.1:$o1_port; }
server {
	listen 127.0.0.1:$port;
	proxy_pass up;
	deny dst in blocked;
}
CONF
start_proxyd "$T/proxyd.conf" "$port"
wait_log() { # wait_log REGEX: polls the error log for up to 5 s
	for _ in $(seq 1 100); do
		grep -Eq -- "$1" "$T/proxyd.log" && return 0
		sleep 0.05
	done
	return 1
}
wait_log 'proxyd .* started' || diag "no 'started' line in the log"
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $1" "http://127.0.0.1:$port/"; }
# codes HOST: the statuses of 10 new connections, unique
codes() { for _ in 1 2 3 4 5 6 7 8 9 10; do code "$1"; echo; done | sort -u | tr -d '\n'; }
is "$(codes old.test)$(codes new.test)" 403200 "generation 1: old.test denied, new.test served"

printf 'new.test\n# a comment\nb\303\274cher.test\n' >"$T/blocked.lst.new"
mv "$T/blocked.lst.new" "$T/blocked.lst"
kill -HUP "$PROXYD_PID"
wait_log 'reload failed'
ok $? "a reload with a broken set file is refused"
like "$(grep 'reload failed' "$T/proxyd.log")" "$T/blocked.lst:3: non-ASCII domain name" \
	"the error log names the set file, its line and the reason"
kill -0 "$PROXYD_PID" 2>/dev/null
ok $? "proxyd still runs"
is "$(codes old.test)" 403 "after the failed reload: old.test still denied (old policy)"
is "$(codes new.test)" 200 "after the failed reload: new.test still served (old policy)"

printf 'new.test\n' >"$T/blocked.lst.new"
mv "$T/blocked.lst.new" "$T/blocked.lst"
kill -HUP "$PROXYD_PID"
wait_log 'configuration generation 2 loaded'
ok $? "the fixed set file is loaded as generation 2"
# bounded poll: every worker has switched when 10 new connections all see the new policy
for _ in $(seq 1 50); do
	[ "$(codes new.test)" = 403 ] && [ "$(codes old.test)" = 200 ] && break
	sleep 0.1
done
is "$(codes new.test)" 403 "generation 2: new.test denied"
is "$(codes old.test)" 200 "generation 2: old.test served"
