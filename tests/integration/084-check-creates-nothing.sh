#!/usr/bin/env bash
# `proxyd -t` (and --explain) check what the daemon would create, without creating it:
# no access log, no error log, no cache files, an existing log left as it was; a missing
# log directory is still an error (for the error log too), and a directory the checking user cannot write is refused (log) or
# reported (cache, "serving uncached"); the daemon started afterwards creates both. Run
# as root (with setpriv), the packaged case: `proxyd -t` as root on directories that
# belong to the service's user leaves no root-owned file behind, so proxyd then started
# as that user opens its access log and its cache (before, -t made a root-owned 0640
# access log that the user's proxyd could not open, and start-up failed).
. "$TESTLIB"
plan 15

# conf LOGDIR CACHEDIR PORT: a forward server with an access log and a cache
conf() {
	cat <<CONF
workers 1;
cache main {
	path $2;
	max_size 16m;
}
server {
	listen 127.0.0.1:$3;
	mode forward;
	cache main;
	access_log $1/access.log;
}
CONF
}
check() { "$PROXYD" -t -c "$1" 2>&1; }

mkdir -p "$T/log" "$T/cache"
port=$(free_port_static)
conf "$T/log" "$T/cache" "$port" >"$T/proxyd.conf"
like "$(check "$T/proxyd.conf")" 'configuration OK' "proxyd -t accepts a missing access log in an existing directory"
[ ! -e "$T/log/access.log" ] && [ -z "$(ls -A "$T/cache")" ]
ok $? "proxyd -t created no access log and nothing in the cache directory"
"$PROXYD" -c "$T/proxyd.conf" --explain 'src=127.0.0.1 url=http://example.com/' >/dev/null 2>&1
[ ! -e "$T/log/access.log" ] && [ -z "$(ls -A "$T/cache")" ]
ok $? "--explain created nothing either"
printf 'an old line\n' >"$T/log/access.log"
out=$(check "$T/proxyd.conf")
is "$?:$(cat "$T/log/access.log")" "0:an old line" "an existing access log passes and is left as it was"
rm -f "$T/log/access.log"

conf "$T/nolog" "$T/cache" "$port" >"$T/nolog.conf"
out=$(check "$T/nolog.conf")
like "$?:$out" '^1:.*nolog\.conf:[0-9]+: cannot open access log ".*/nolog/access\.log": No such file or directory' \
	"an access log in a missing directory is still an error, with its file and line"

# the error log too: the daemon would fail to start without it, so -t says so, and a
# missing one in an existing directory is not created
{ echo "error_log $T/nolog/error.log;"; conf "$T/log" "$T/cache" "$port"; } >"$T/noerr.conf"
out=$(check "$T/noerr.conf")
like "$?:$out" '^1:.*noerr\.conf:1: cannot open error log ".*/nolog/error\.log": No such file or directory' \
	"an error log in a missing directory is an error, with its file and line"
{ echo "error_log $T/log/error.log;"; conf "$T/log" "$T/cache" "$port"; } >"$T/err.conf"
out=$(check "$T/err.conf")
is "$?:$(ls -A "$T/log")" "0:" "an error log in an existing directory passes, and -t does not create it"

start_origin o1
start_proxyd "$T/proxyd.conf" "$port"
body=$(curl -s --max-time 10 -x "http://127.0.0.1:$port" "http://127.0.0.1:$o1_port/")
is "$body" "$o1_uuid" "proxyd started after the check serves"
# the access line is written once the response is sent: wait for it (5 s at most)
wait_grep "$T/log/access.log" . && [ -e "$T/cache/data.mdb" ]
ok $? "and it created its access log and its cache files itself"
stop_proxyd >/dev/null

# --- a user who may not write there ----------------------------------------------------------
# As root: the checks run as nobody (setpriv) on directories root owns (0755). Otherwise:
# as ourselves, on directories made read-only (0555).
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
nobody_ok() {
	[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && getent group nogroup >/dev/null ||
		return 1
	chmod 0711 "$T"
	as_nobody test -x "$PROXYD"
}
mkdir -p "$T/ro-log" "$T/ro-cache" "$T/nb-log"
if [ "$(id -u)" -eq 0 ]; then
	if nobody_ok; then
		chown nobody:nogroup "$T/nb-log"
		as=as_nobody
	else
		as=""
	fi
else
	chmod 0555 "$T/ro-log" "$T/ro-cache"
	as=env
	rmdir "$T/nb-log" && ln -s log "$T/nb-log"
fi
if [ -n "$as" ]; then
	conf "$T/ro-log" "$T/cache" "$port" >"$T/ro-log.conf"
	conf "$T/nb-log" "$T/ro-cache" "$port" >"$T/ro-cache.conf"
	chmod 0644 "$T/ro-log.conf" "$T/ro-cache.conf"
	out=$($as "$PROXYD" -t -c "$T/ro-log.conf" 2>&1)
	like "$?:$out" '^1:.*cannot open access log ".*/ro-log/access\.log": Permission denied' \
		"a missing access log in a directory the user cannot write is an error"
	out=$($as "$PROXYD" -t -c "$T/ro-cache.conf" 2>&1)
	like "$?:$out" '^0:.*cache "main": .*/ro-cache: Permission denied; serving uncached' \
		"a cache directory the user cannot write is reported as at start (a warning)"
else
	pass "# SKIP root without setpriv, group nogroup, or a build tree nobody can reach"
	pass "# SKIP root without setpriv, group nogroup, or a build tree nobody can reach"
fi

# --- root checks, the service's user runs ------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && [ "$as" = as_nobody ]; then
	u=$T/unit
	mkdir -p "$u/log" "$u/cache"
	chown -R nobody:nogroup "$u"
	uport=$(free_port_static)
	conf "$u/log" "$u/cache" "$uport" >"$u/proxyd.conf"
	chmod 0644 "$u/proxyd.conf"
	like "$(check "$u/proxyd.conf")" 'configuration OK' "root: proxyd -t accepts the user's directories"
	is "$(find "$u/log" "$u/cache" -user root | wc -l)" 0 "root: and leaves no root-owned file in them"
	(exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$PROXYD" -f -c "$u/proxyd.conf" \
		>>"$T/nobody.out" 2>>"$T/nobody.log") &
	upid=$!
	PIDS="$PIDS $upid"
	wait_port 127.0.0.1 "$uport"
	ok $? "then proxyd started as the user starts (it opens the access log)"
	curl -s --max-time 10 -x "http://127.0.0.1:$uport" "http://127.0.0.1:$o1_port/" >/dev/null
	is "$(stat -c %U "$u/log/access.log" "$u/cache/data.mdb" 2>/dev/null | sort -u)" nobody \
		"its access log and cache files belong to the user"
	kill -TERM "$upid"
	wait "$upid"
else
	for _ in 1 2 3 4; do pass "# SKIP needs root, setpriv, group nogroup, a build tree nobody can reach"; done
fi
