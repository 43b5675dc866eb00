#!/usr/bin/env bash
# SIGHUP reloads: new requests follow the new upstream; a broken file is refused and the
# running configuration keeps serving; a keep-alive connection opened before a reload
# keeps working after it; a listen address added by a reload opens and one removed by a
# later reload closes.
. "$TESTLIB"
plan 17

start_origin a
start_origin b
port=$(free_port_static)
port2=$(free_port_static)

# mkconf ORIGIN_PORT LISTEN_PORT...: writes $T/proxyd.conf at once (rename), so that a
# reload never reads half a file
mkconf() {
	local op=$1 l
	shift
	{
		echo "workers 2;"
		echo "error_log stderr info;"
		echo "upstream up { server 127.0.0.1:$op; }"
		echo "server {"
		for l in "$@"; do echo "	listen 127.0.0.1:$l;"; done
		echo "	proxy_pass up;"
		echo "}"
	} >"$T/proxyd.conf.new"
	mv "$T/proxyd.conf.new" "$T/proxyd.conf"
}

# wait_log REGEX: polls proxyd's error log for up to 5 s
wait_log() {
	for _ in $(seq 1 100); do
		grep -Eq -- "$1" "$T/proxyd.log" && return 0
		sleep 0.05
	done
	return 1
}

# answers_all UUID [PORT]: the next 10 new connections are all answered by UUID
answers_all() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(curl -s --max-time 5 "http://127.0.0.1:${2:-$port}/")" = "$1" ] || return 1
	done
}

# wait_answers UUID: polls up to 5 s until answers_all holds (every worker reloaded)
wait_answers() {
	for _ in $(seq 1 50); do
		answers_all "$1" && return 0
		sleep 0.1
	done
	return 1
}

# ka_get: one GET / on the kept-alive connection (fd 5); prints the response
ka_get() {
	printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&5
	read_response 5 5
}

mkconf "$a_port" "$port"
start_proxyd "$T/proxyd.conf" "$port"
# SIGHUP before the handler is installed would kill proxyd: wait for "started"
wait_log 'proxyd .* started' || diag "no 'started' line in the log"
answers_all "$a_uuid"
ok $? "generation 1: new connections reach origin A"

exec 5<>"/dev/tcp/127.0.0.1/$port" || bail "cannot connect"
r=$(ka_get | tr '\r\n' '  ')
like "$r" "^HTTP/1.1 200 .*$a_uuid" "keep-alive connection: first request answered before the reload"

# --- reload to origin B ---------------------------------------------------------------------
mkconf "$b_port" "$port"
kill -HUP "$PROXYD_PID"
wait_answers "$b_uuid"
ok $? "after SIGHUP with origin B: new connections reach B"
like "$(cat "$T/proxyd.log")" 'configuration generation 2 loaded' "the log records generation 2"

r=$(ka_get)
rc=$?
like "$r" '^HTTP/1.1 200 ' "keep-alive connection opened before the reload: a second request on it gets 200"
ok $rc "keep-alive connection: the second response arrives complete on the same connection"
diag "the pre-reload connection was answered by $(printf '%s' "$r" | tail -n 1 |
	sed "s/$a_uuid/origin A (its own generation)/; s/$b_uuid/origin B (the new generation)/")"

# --- a broken file is refused --------------------------------------------------------------
printf 'workers 2;\nupstream up { server 127.0.0.1:%s; }\nserver { listen 127.0.0.1:%s proxy_pass up; }\n' \
	"$a_port" "$port" >"$T/proxyd.conf.new"
printf 'frobnicate;\n' >>"$T/proxyd.conf.new"
mv "$T/proxyd.conf.new" "$T/proxyd.conf"
kill -HUP "$PROXYD_PID"
wait_log 'reload failed'
ok $? "a reload with a syntax error is refused, and the error log says so"
like "$(grep 'reload failed' "$T/proxyd.log")" 'proxyd\.conf:[0-9]+:' "the failed-reload message names proxyd.conf:LINE"
kill -0 "$PROXYD_PID" 2>/dev/null
ok $? "proxyd is still running after the failed reload"
answers_all "$b_uuid"
ok $? "after the failed reload new connections still reach B"

# --- a reload adds a listen address, a later one removes it -------------------------------
mkconf "$b_port" "$port" "$port2"
kill -HUP "$PROXYD_PID"
wait_port 127.0.0.1 "$port2" 100
ok $? "a reload that adds listen $port2 opens it"
answers_all "$b_uuid" "$port2"
ok $? "the added listen address serves"

mkconf "$b_port" "$port"
kill -HUP "$PROXYD_PID"
closed=1
for _ in $(seq 1 100); do
	port_open 127.0.0.1 "$port2" || { closed=0; break; }
	sleep 0.05
done
ok $closed "a later reload without it closes listen $port2"
answers_all "$b_uuid"
ok $? "the remaining listen address still serves B"

r=$(ka_get)
like "$r" '^HTTP/1.1 200 ' "the keep-alive connection from before the first reload still works after four reloads"
exec 5>&-
like "$(grep -c 'configuration generation [0-9]* loaded' "$T/proxyd.log")" '^3$' "three successful reloads logged"
kill -0 "$PROXYD_PID" 2>/dev/null
ok $? "proxyd is still running"
