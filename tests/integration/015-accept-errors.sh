#!/usr/bin/env bash
# Accept errors do not spin: with a low descriptor limit and more clients than it allows,
# accept() fails with EMFILE while connections wait in the queue; proxyd must rest instead
# of retrying in a busy loop, and serve again once descriptors are free.
. "$TESTLIB"
plan 7

NCONN=60

# cpu_ticks PID: utime + stime of the whole process (all threads), in clock ticks
cpu_ticks() {
	local line rest
	read -r line <"/proc/$1/stat" || { echo 0; return; }
	rest=${line##*) } # fields from 3 (state) on; comm may hold spaces
	set -- $rest
	echo $((${12} + ${13}))
}

# nfd PID: how many of the descriptors 0-39 are open (inherited ones above don't count)
nfd() {
	local f n=0
	for f in "/proc/$1/fd/"*; do
		[ "${f##*/}" -lt 40 ] 2>/dev/null && n=$((n + 1))
	done
	echo "$n"
}

start_origin o
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass o; }
CONF
# start_proxyd runs $PROXYD; a wrapper lowers the limit and then becomes proxyd (exec), so
# PROXYD_PID is proxyd itself
cat >"$T/proxyd-lowfd" <<WRAP
#!/bin/sh
ulimit -n 40 || exit 1
exec "$PROXYD" "\$@"
WRAP
chmod +x "$T/proxyd-lowfd"
PROXYD="$T/proxyd-lowfd" start_proxyd "$T/proxyd.conf" "$port"
is "$(awk '/^Max open files/ {print $4}' "/proc/$PROXYD_PID/limits")" 40 "proxyd runs with a limit of 40 descriptors"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 200 "proxyd serves"

# more connections than descriptors; the kernel completes the handshakes (backlog 511)
# whether proxyd accepts them or not
fds=()
for i in $(seq 1 "$NCONN"); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" || break
	fds+=("$fd")
done
is "${#fds[@]}" "$NCONN" "$NCONN connections opened and held"

# give proxyd time to use up its descriptors, then measure
for _ in $(seq 1 40); do
	[ "$(nfd "$PROXYD_PID")" -ge 40 ] && break
	sleep 0.05
done
n=$(nfd "$PROXYD_PID")
is "$n" 40 "proxyd uses all 40 descriptors, so accept() fails"
c0=$(cpu_ticks "$PROXYD_PID")
sleep 2
c1=$(cpu_ticks "$PROXYD_PID")
used=$((c1 - c0))
diag "proxyd used $used clock ticks of CPU in 2s at the descriptor limit; $(grep -c 'accept() failed' "$T/proxyd.log") accept errors logged"
ok $((used < 50 ? 0 : 1)) "at the descriptor limit proxyd does not spin ($used ticks in 2s, limit 50)"

for fd in "${fds[@]}"; do
	exec {fd}<&-
done
out=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")
is "$out" 200 "after the clients leave, a normal request succeeds"
ok "$(kill -0 "$PROXYD_PID" 2>/dev/null && echo 0 || echo 1)" "proxyd is still running"
