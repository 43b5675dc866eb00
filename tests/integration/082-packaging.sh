#!/usr/bin/env bash
# The files the packages install (packaging/): the default configuration passes
# `proxyd -t` as shipped and with every commented example enabled (paths moved into the
# test directory), and run, it is a forward proxy for loopback clients only (no open
# proxy) that writes its pid file and both logs; the logrotate file, run by logrotate,
# moves the logs and its postrotate makes proxyd reopen both; the systemd unit made by
# `make` has its paths filled in and passes `systemd-analyze verify` (when installed).
. "$TESTLIB"
plan 34

pkg=${TOP_SRCDIR:?}/packaging
[ -f "$pkg/proxyd.conf" ] || bail "no $pkg/proxyd.conf"
mkdir -p "$T/log" "$T/cache" "$T/run" "$T/conf.d"

# packaged FILE: the default configuration with its directories moved into $T and no
# `user` (a test run as root would switch to a user that may not exist here)
packaged() {
	sed -e "s|/var/log/proxyd|$T/log|g; s|/var/cache/proxyd|$T/cache|g" \
		-e "s|/run/proxyd|$T/run|g" -e 's/^user proxyd;$//' "$pkg/proxyd.conf"
}

# --- proxyd -t, as shipped and with the examples -------------------------------------------
packaged >"$T/proxyd.conf"
grep -q '^user proxyd;$' "$pkg/proxyd.conf"
ok $? "the default configuration names the user the packages create"
out=$("$PROXYD" -t -c "$T/proxyd.conf" 2>&1)
ok $? "proxyd -t accepts the default configuration"
like "$out" 'configuration OK' "proxyd -t says configuration OK"
grep -q "^ *access_log $T/log/access.log combined;" "$T/proxyd.conf" && [ ! -e "$T/log/access.log" ]
ok $? "its access log is under the log directory, and proxyd -t did not create it"

# Examples are lines "#directive" or "#    directive" (prose is "# text"): enable them all.
packaged | sed -E 's/^( *)#([^ ]|    )/\1\2/' >"$T/examples.conf"
n=$(diff "$T/proxyd.conf" "$T/examples.conf" | grep -c '^>')
ok $((n < 15)) "the commented examples are found ($n lines enabled)"
out=$("$PROXYD" -t -c "$T/examples.conf" 2>&1)
rc=$?
ok $rc "proxyd -t accepts the default configuration with every example enabled"
[ $rc -eq 0 ] || diag "$out"

# --- no open proxy --------------------------------------------------------------------------
"$PROXYD" -c "$T/proxyd.conf" --explain 'src=127.0.0.1 url=http://example.com/' >"$T/explain1"
is "$?" 0 "a loopback client is allowed"
"$PROXYD" -c "$T/proxyd.conf" --explain 'src=192.0.2.7 url=http://example.com/' >"$T/explain2"
is "$?" 1 "another client is denied, even if proxyd listened on its network"

# --- run it ---------------------------------------------------------------------------------
start_origin o1
port=$(free_port_static)
sed -e "s|listen 127.0.0.1:3128;|listen 127.0.0.1:$port;|" -e 's/^workers auto;/workers 2;/' \
	"$T/proxyd.conf" >"$T/run.conf"
grep -q "listen 127.0.0.1:$port;" "$T/run.conf" || bail "listen 127.0.0.1:3128 not in the file"
start_proxyd "$T/run.conf" "$port"
is "$(cat "$T/run/proxyd.pid" 2>/dev/null)" "$PROXYD_PID" "the pid file holds proxyd's pid"
body=$(curl -s --max-time 10 -x "http://127.0.0.1:$port" "http://127.0.0.1:$o1_port/")
is "$body" "$o1_uuid" "a request through the forward proxy reaches the origin"
like "$(cat "$T/log/access.log")" '"GET http://127.0.0.1:[0-9]+/ HTTP/1.1" 200' \
	"the request is in the access log"
like "$(cat "$T/log/error.log")" 'started' "the error log is written"

# --- logrotate ------------------------------------------------------------------------------
if command -v logrotate >/dev/null; then
	# as root, logrotate switches to the files' owner (here the test's user); no systemd
	sed -e "s|/var/log/proxyd|$T/log|g; s|/run/proxyd|$T/run|g" \
		-e "s|/run/systemd/system|$T/no-systemd|" \
		-e "s|proxyd proxyd$|$(id -un) $(id -gn)|" "$pkg/logrotate/proxyd" >"$T/logrotate.conf"
	[ "$(id -u)" -eq 0 ] || sed -i '/^\tsu /d' "$T/logrotate.conf"
	logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" >"$T/logrotate.out" 2>&1
	rc=$?
	ok $rc "logrotate runs the packaged file"
	[ $rc -eq 0 ] || diag "$(cat "$T/logrotate.out")"
	grep -q 'GET http' "$T/log/access.log.1" 2>/dev/null
	ok $? "the access log was moved to access.log.1"
	wait_grep "$T/log/error.log" 'SIGUSR1: log file reopened'
	ok $? "postrotate: proxyd reopened the error log (SIGUSR1)"
	wait_grep "$T/log/error.log" 'configuration generation 2 loaded'
	ok $? "postrotate: proxyd reloaded (SIGHUP), which reopens the access logs"
	curl -s -o /dev/null --max-time 10 -x "http://127.0.0.1:$port" "http://127.0.0.1:$o1_port/bytes/1"
	grep -q 'GET http://127.0.0.1:[0-9]*/bytes/1 ' "$T/log/access.log" 2>/dev/null
	ok $? "a request after the rotation is in the new access log"
	[ "$(stat -c %a "$T/log/access.log" 2>/dev/null)" = 640 ]
	ok $? "the new access log has mode 0640"
else
	for _ in 1 2 3 4 5 6; do pass "# SKIP logrotate is not installed"; done
fi
stop_proxyd >"$T/stop.rc"
is "$(cat "$T/stop.rc")" 0 "SIGTERM: proxyd exits 0"
[ ! -e "$T/run/proxyd.pid" ]
ok $? "and removes its pid file"

# --- the unit's user model, without systemd -----------------------------------------------
# The unit starts proxyd as its user with CAP_NET_BIND_SERVICE alone (ambient): set up the
# same with setpriv (as nobody), and see that it binds a port below 1024 at start and
# another one on reload, and that `user proxyd` is then a no-op. Ports 1000-1023: below
# 1024, and outside dead_port's 1-999 that other tests expect nothing to listen on.
low_port() { pick_port 1000 24; }
as_unit() { # run in a subshell, so exec: $! is then proxyd's pid
	exec setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
		--inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
		--bounding-set=-all,+net_bind_service "$@"
}
# unit_setup: the directories, owned by nobody, and the file; fails unless nobody can
# reach them and the binary (a build tree under a 0700 directory, as in package builds)
unit_setup() {
	[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && getent group nogroup >/dev/null ||
		return 1
	lp1=$(low_port) && lp2=$(low_port) || return 1
	chmod 0711 "$T"
	u=$T/unit
	mkdir -p "$u/log" "$u/run" "$u/cache"
	chown -R nobody:nogroup "$u"
	sed -e "s|/var/log/proxyd|$u/log|g; s|/var/cache/proxyd|$u/cache|g; s|/run/proxyd|$u/run|g" \
		-e "s|listen 127.0.0.1:3128;|listen 127.0.0.1:$lp1;|" -e 's/^workers auto;/workers 1;/' \
		"$pkg/proxyd.conf" >"$u/proxyd.conf"
	chmod 0644 "$u/proxyd.conf"
	(as_unit sh -c 'test -x "$1" && test -r "$2" && test -w "$3"' sh "$PROXYD" "$u/proxyd.conf" \
		"$u/log")
}
if unit_setup; then
	out=$(as_unit "$PROXYD" -t -c "$u/proxyd.conf" 2>&1)
	ok $? "as the unit runs it (nobody, one capability), proxyd -t accepts the file with 'user proxyd'"
	if [ "$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null)" -ge 1024 ] 2>/dev/null; then
		timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
			--inh-caps=-all --bounding-set=-all "$PROXYD" -f -c "$u/proxyd.conf" \
			>/dev/null 2>"$T/nocap.log"
		rc=$?
		grep -q "listen 127.0.0.1:$lp1: Permission denied" "$u/log/error.log"
		ok $((rc == 0 || $? != 0)) "without the capability the same start fails: permission denied (rc $rc)"
	else
		pass "# SKIP unprivileged processes may bind any port here"
	fi
	(as_unit "$PROXYD" -f -c "$u/proxyd.conf" >"$T/unit.out" 2>"$T/unit.log") &
	upid=$!
	PIDS="$PIDS $upid"
	wait_port 127.0.0.1 "$lp1"
	ok $? "it binds port $lp1 at start"
	is "$(curl -s --max-time 10 -x "http://127.0.0.1:$lp1" "http://127.0.0.1:$o1_port/")" \
		"$o1_uuid" "and serves through it"
	is "$(stat -c %U "$u/log/error.log" 2>/dev/null)" nobody "its logs belong to its user"
	sed -i "s|listen 127.0.0.1:$lp1;|&\n    listen 127.0.0.1:$lp2;|" "$u/proxyd.conf"
	kill -HUP "$upid"
	wait_grep "$u/log/error.log" 'configuration generation 2 loaded'
	ok $? "a reload that adds port $lp2 is accepted"
	wait_port 127.0.0.1 "$lp2"
	ok $? "and binds port $lp2 (as its user)"
	kill -TERM "$upid"
	wait "$upid"
	is "$?" 0 "SIGTERM: it exits 0"
	[ ! -e "$u/run/proxyd.pid" ]
	ok $? "and removes its pid file"
else
	for _ in 1 2 3 4 5 6 7 8 9; do pass "# SKIP needs root, setpriv, group nogroup, free ports 1000-1023, a build tree nobody can reach"; done
fi

# --- the systemd unit -----------------------------------------------------------------------
unit=$(dirname "$(dirname "$PROXYD")")/packaging/systemd/proxyd.service
[ -f "$unit" ] || bail "no $unit (made by make)"
grep -q '@[a-z]*@' "$unit"
ok $((!$?)) "the unit has every path filled in"
is "$(grep -c -E '^ExecStart(Pre)?=/[^ ]*/proxyd -[tf] -c /[^ ]*/proxyd/proxyd.conf$' "$unit")" 2 \
	"the unit tests the configuration, then runs proxyd in the foreground on it"
if command -v systemd-analyze >/dev/null; then
	# verify checks that the programs exist: point at the built proxyd; man pages are
	# checked below, as `man` may not be installed
	sed -e "s|^\(ExecStart[A-Za-z]*=\)/[^ ]*/proxyd |\1$PROXYD |" -e '/^Documentation=/d' \
		"$unit" >"$T/proxyd.service"
	out=$(systemd-analyze verify "$T/proxyd.service" 2>&1)
	ok $? "systemd-analyze verify accepts the unit"
	[ -z "$out" ] || diag "$out"
else
	pass "# SKIP systemd-analyze is not installed"
fi
for page in $(sed -n 's/^Documentation=//p' "$unit" | tr ' ' '\n' | sed -n 's/^man:\(.*\)(\(.\))$/\1.\2/p'); do
	[ -f "$TOP_SRCDIR/doc/$page" ]
	ok $? "the unit's documentation $page exists"
done
