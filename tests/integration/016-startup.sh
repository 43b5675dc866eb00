#!/usr/bin/env bash
# Start-up in daemon mode: the command's exit status tells whether the daemon started;
# a second proxyd on the same address is refused instead of sharing it through
# SO_REUSEPORT; a zero-length POST keeps its Content-Length.
. "$TESTLIB"
plan 8

start_origin o
port=$(free_port)
cat >"$T/proxyd.conf" <<CONF
error_log $T/daemon.log info;
pid_file $T/proxyd.pid;
upstream u { server 127.0.0.1:$o_port; }
server { listen 127.0.0.1:$port; proxy_pass u; }
CONF

"$PROXYD" -c "$T/proxyd.conf" 2>"$T/daemon.err"
is "$?" 0 "daemon mode: the command exits 0 once the daemon runs"
pid=$(cat "$T/proxyd.pid" 2>/dev/null)
[ -n "$pid" ] && PIDS="$PIDS $pid"
ok $([ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; echo $?) "the pid file names a live process"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 200 "the daemon serves"

"$PROXYD" -c "$T/proxyd.conf" 2>>"$T/daemon.err"
is "$?" 1 "a second daemon on the same address exits 1"
like "$(cat "$T/daemon.log")" "listen 127.0.0.1:$port: Address already in use" \
	"its error names the address"
"$PROXYD" -f -c "$T/proxyd.conf" 2>"$T/second.log"
is "$?" 1 "a second one in the foreground is refused too"

out=$(printf 'POST /headers HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' |
	raw 127.0.0.1 "$port")
like "$out" $'\nContent-Length: 0\r?\n' "a POST with Content-Length: 0 is forwarded with it"

kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
ok $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0) "SIGTERM stops the daemon"
