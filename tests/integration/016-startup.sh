#!/usr/bin/env bash
# Start-up in daemon mode: the command's exit status tells whether the daemon started;
# a second proxyd on the same address is refused instead of sharing it through
# SO_REUSEPORT; a zero-length POST keeps its Content-Length; a SIGHUP or SIGUSR1 sent
# during start-up (`systemctl reload` or logrotate right after a Type=simple start) waits
# for the signal events instead of killing proxyd; with $NOTIFY_SOCKET (a Type=notify
# unit) proxyd sends READY=1 once it listens and STOPPING=1 when it stops.
. "$TESTLIB"
plan 15

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

# Signals during start-up, while proxyd loads its configuration: its deny_page is a FIFO
# that the test holds open, so proxyd waits in the middle of loading until the test writes
# the page, and the signals are sent in between. They used to kill it (default action),
# since the signal events did not exist yet; blocked until then, they are handled once it
# runs. The reload then reads a regular file in the FIFO's place.
port2=$(free_port)
mkfifo "$T/page"
printf 'denied\n' >"$T/page.txt"
cat >"$T/early.conf" <<CONF
error_log $T/early.log info;
upstream u { server 127.0.0.1:$o_port; }
server { listen 127.0.0.1:$port2; proxy_pass u; deny_page $T/page; }
CONF
exec 3<>"$T/page"
"$PROXYD" -f -c "$T/early.conf" 2>>"$T/early.err" 3>&- &
early=$!
PIDS="$PIDS $early"
reading=1
for _ in $(seq 1 200); do
	ls -l "/proc/$early/fd" 2>/dev/null | grep -q -- "-> $T/page\$" && reading=0 && break
	sleep 0.05
done
ok "$reading" "proxyd reads its deny_page FIFO while loading"
kill -HUP "$early"
kill -USR1 "$early"
mv -f "$T/page.txt" "$T/page"
echo denied >&3
exec 3>&-
wait_port 127.0.0.1 "$port2" || diag "$(cat "$T/early.err" "$T/early.log" 2>&1)"
ok $(kill -0 "$early" 2>/dev/null; echo $?) "a SIGHUP and a SIGUSR1 sent then do not kill proxyd"
wait_grep "$T/early.log" 'configuration generation 2 loaded'
like "$(cat "$T/early.log" 2>&1)" 'SIGUSR1: log file reopened' "the early SIGUSR1 reopened the log once proxyd ran"
like "$(cat "$T/early.log" 2>&1)" 'configuration generation 2 loaded' "the early SIGHUP reloaded it"
kill -TERM "$early" 2>/dev/null
wait "$early" 2>/dev/null

# sd_notify: a datagram socket in NOTIFY_SOCKET's place (python3) receives what proxyd
# sends. READY=1 only after the listening socket exists, since systemd then reports the
# unit started; STOPPING=1 on SIGTERM.
if command -v python3 >/dev/null 2>&1; then
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
print("bound", flush=True)
for _ in range(2):
    m = s.recv(4096).decode()
    print(m, flush=True)
    if m == "READY=1":
        # the listening socket must exist now
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[2])), 5).close()
            print("listening", flush=True)
        except OSError as e:
            print("not listening:", e, flush=True)
' "$T/notify" "$port2" >"$T/notify.out" 2>&1 &
	PIDS="$PIDS $!"
	wait_grep "$T/notify.out" bound
	NOTIFY_SOCKET=$T/notify "$PROXYD" -f -c "$T/early.conf" 2>>"$T/notify.err" &
	np=$!
	PIDS="$PIDS $np"
	# READY=1, then the receiver's own connect result on the next line
	wait_grep "$T/notify.out" '^READY=1' 200 && wait_grep "$T/notify.out" 'listening'
	is "$(sed -n 2,3p "$T/notify.out" | tr '\n' ' ')" "READY=1 listening " "NOTIFY_SOCKET: READY=1, sent once proxyd listens"
	kill -TERM "$np"
	wait "$np"
	is "$?" 0 "SIGTERM: proxyd exits 0"
	wait_grep "$T/notify.out" '^STOPPING=1'
	is "$(sed -n 4p "$T/notify.out")" "STOPPING=1" "NOTIFY_SOCKET: STOPPING=1 when it stops"
else
	pass "NOTIFY_SOCKET: READY=1 # SKIP no python3"
	pass "SIGTERM # SKIP no python3"
	pass "NOTIFY_SOCKET: STOPPING=1 # SKIP no python3"
fi
