#!/usr/bin/env bash
# The root-start model: proxyd started as root with `user nobody` gives the files it creates
# as root (error log, access log, data.mdb and lock.mdb) to nobody, and every thread runs as
# nobody, so that after the switch a SIGUSR1 reopens the error log, a reload reopens the
# access log it made at start, and a reload that comes back to the first cache reopens its
# files and serves what it stored (before, they were root's 0640 files: the reload failed,
# the cache was "serving uncached"). The pid file stays root's and, in a directory nobody
# cannot write, is emptied at exit. `proxyd -t` as root reports an unknown user with its
# file:line, and warns about an existing log nobody could not reopen.
. "$TESTLIB"

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
command -v setpriv >/dev/null || skip_all "needs setpriv"
getent passwd nobody >/dev/null && getent group nogroup >/dev/null ||
	skip_all "needs the user nobody and the group nogroup"
chmod 0711 "$T"
setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$T" ||
	skip_all "nobody cannot reach $T (a parent directory is not searchable)"
plan 19

uid=$(id -u nobody)
mkdir -p "$T/log" "$T/cache" "$T/cache2"
chown nobody:nogroup "$T/log" "$T/cache" "$T/cache2"
chmod 0750 "$T/log" "$T/cache" "$T/cache2"

start_origin o1
port=$(free_port_static)
# conf CACHEDIR ACCESSLOG
conf() {
	cat <<CONF
user nobody;
workers 2;
error_log $T/log/error.log info;
pid_file $T/proxyd.pid;
cache main { path $1; max_size 16m; }
upstream app { server 127.0.0.1:$o1_port; }
server {
	listen 127.0.0.1:$port;
	proxy_pass app;
	cache main;
	access_log $2;
}
CONF
}
# wait_log REGEX: polls the error log up to 10 s
wait_log() { wait_grep "$T/log/error.log" "$1" 200; }
# reloaded N: waits up to 10 s for the N-th reload's verdict in the error log; true if it loaded
reloaded() {
	local v=""
	for _ in $(seq 1 100); do
		v=$(grep -E 'generation [0-9]+ loaded|reload failed' "$T/log/error.log" | sed -n "$1p")
		[ -n "$v" ] && break
		sleep 0.1
	done
	case "$v" in *loaded*) return 0 ;; esac
	return 1
}
xc() { curl -s --max-time 10 -D - -o /dev/null "$1" | tr -d '\r' | sed -n 's/^X-Cache: //p'; }
# hit URL: polls up to 5 s until URL is a HIT (the store commits in its writer thread)
hit() {
	for _ in $(seq 1 50); do
		[ "$(xc "$1")" = HIT ] && return 0
		sleep 0.1
	done
	return 1
}
owners() { stat -c %U:%G "$@" 2>/dev/null | sort -u | tr '\n' ' '; }

# --- start as root ---------------------------------------------------------------------------
conf "$T/cache" "$T/log/access.log" >"$T/proxyd.conf"
start_proxyd "$T/proxyd.conf" "$port"
wait_log 'started'
ok $? "proxyd started as root with user nobody"
U="http://127.0.0.1:$port/bytes/100?cc=max-age%3D600"
is "$(xc "$U")" MISS "a first request is a miss"
hit "$U"
ok $? "and then a hit"
is "$(owners "$T/log/error.log" "$T/log/access.log" "$T/cache/data.mdb" "$T/cache/lock.mdb")" \
	"nobody:nogroup " "the error log, the access log and the cache files belong to nobody"
is "$(stat -c %U "$T/proxyd.pid"):$(cat "$T/proxyd.pid")" "root:$PROXYD_PID" \
	"the pid file is root's and names the daemon"
ids=$(awk '/^(Uid|Gid):/ {print $1, $2, $3, $4, $5}' /proc/"$PROXYD_PID"/task/*/status | sort -u |
	tr '\n' ' ')
is "$ids" "Gid: 65534 65534 65534 65534 Uid: $uid $uid $uid $uid " \
	"every thread runs as nobody (real, effective, saved and file system ids)"
is "$(awk '/^Groups:/ {print $2}' /proc/"$PROXYD_PID"/status)" 65534 "with nogroup as its only group"

# --- SIGUSR1 after logrotate moved the error log away ------------------------------------------
mv "$T/log/error.log" "$T/log/error.log.1"
kill -USR1 "$PROXYD_PID"
wait_log 'SIGUSR1: log file reopened'
ok $? "SIGUSR1 opens a new error log"
is "$(owners "$T/log/error.log")" "nobody:nogroup " "which belongs to nobody"

# --- reloads ------------------------------------------------------------------------------------
# the same access log, made by root at start, then a new one: both opened as nobody
kill -HUP "$PROXYD_PID"
reloaded 1
ok $? "a reload reopens the access log created at start"
conf "$T/cache2" "$T/log/access2.log" >"$T/proxyd.conf"
kill -HUP "$PROXYD_PID"
reloaded 2
ok $? "a reload to a new access log and a new cache directory loads"
is "$(xc "$U")" MISS "the new cache starts empty"
curl -s --max-time 10 -o /dev/null "$U"
[ -s "$T/log/access2.log" ] && [ "$(owners "$T/log/access2.log" "$T/cache2/data.mdb")" = "nobody:nogroup " ]
ok $? "the new access log and cache files are nobody's"
# the first cache is closed once no generation uses it; coming back reopens its files
first_open() { ls -l /proc/"$PROXYD_PID"/fd 2>/dev/null | grep -q "$T/cache/"; }
for _ in $(seq 1 100); do
	first_open || break
	sleep 0.1
done
! first_open
ok $? "the first cache is closed once no generation uses it"
conf "$T/cache" "$T/log/access2.log" >"$T/proxyd.conf"
kill -HUP "$PROXYD_PID"
reloaded 3 && ! grep -q 'serving uncached' "$T/log/error.log"
ok $? "a reload back to the first cache reopens its files (no failure, not uncached)"
is "$(xc "$U")" HIT "and serves what was stored before (a hit at once)"

# --- exit: the pid file, in a directory nobody cannot write, is emptied -------------------------
stop_proxyd >/dev/null
[ ! -s "$T/proxyd.pid" ]
ok $? "at exit the pid file is removed or emptied"

# --- proxyd -t as root --------------------------------------------------------------------------
printf 'user no-such-user-proxyd;\n' >"$T/unknown.conf"
conf "$T/cache" "$T/log/access.log" | sed 's/^user nobody;$//' >>"$T/unknown.conf"
check() { "$PROXYD" -t -c "$1" 2>&1; echo "rc=$?"; } # on one line
like "$(check "$T/unknown.conf" | tr '\n' ' ')" \
	'unknown\.conf:1: invalid value "no-such-user-proxyd" in "user" directive: unknown user.*rc=1' \
	"proxyd -t reports an unknown user with its file:line"

install -m 0640 /dev/null "$T/log/root.log"
conf "$T/cache" "$T/log/root.log" >"$T/root.conf"
like "$(check "$T/root.conf" | tr '\n' ' ')" \
	'root\.conf:[0-9]+: access log .*/root\.log \(uid 0, mode 640\) is not writable by user "nobody".*rc=0' \
	"proxyd -t warns about an existing access log nobody could not reopen"
