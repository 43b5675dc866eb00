# lib.sh - shared helpers for integration tests: TAP output, temp dirs, free ports,
# starting origins and proxyd, and cleanup by PID. Sourced by every tests/integration/*.sh.
#
# Environment (set by `make check`, or by hand): PROXYD, ORIGIN (binaries), TEST_TMPDIR
# (a writable directory in the build tree). Tests never write into the source tree.

set -u

: "${PROXYD:?set PROXYD to the proxyd binary}"
: "${ORIGIN:?set ORIGIN to the test origin binary}"
: "${TEST_TMPDIR:=${TMPDIR:-/tmp}}"

mkdir -p "$TEST_TMPDIR"
T=$(mktemp -d "$TEST_TMPDIR/$(basename "$0" .sh).XXXXXX")
PIDS=""
TAP_N=0
TAP_FAILED=0

cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	for p in $PIDS; do
		# bounded wait, then force
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	# Sanitizer reports (ASan, LSan, UBSan) from any process we started fail the test.
	local san
	san=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log "$T"/*.err \
		2>/dev/null)
	if [ -n "$san" ]; then
		for f in $san; do
			echo "# sanitizer report in $f:"
			grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" | head -40 |
				sed 's/^/#   /'
		done
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
	if [ "$TAP_FAILED" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then
		rm -rf "$T"
	else
		echo "# files kept in $T"
	fi
	[ "$TAP_FAILED" -eq 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- TAP ------------------------------------------------------------------------------
plan() { echo "1..$1"; }
ok() { # ok COND-STATUS NAME
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $TAP_N - $2"
	else
		echo "not ok $TAP_N - $2"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}
pass() { ok 0 "$1"; }
fail() { ok 1 "$1"; }
is() { # is GOT WANT NAME
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		echo "#   got:  '$1'"
		echo "#   want: '$2'"
	fi
}
like() { # like GOT REGEX NAME
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		echo "#   got:  '$(printf '%s' "$1" | head -c 400)'"
		echo "#   want: /$2/"
	fi
}
unlike() { # unlike GOT REGEX NAME
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 1 "$3"
		echo "#   got:  '$(printf '%s' "$1" | head -c 400)'"
		echo "#   must not match: /$2/"
	else
		ok 0 "$3"
	fi
}
diag() { echo "# $*"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
bail() { echo "Bail out! $*"; exit 1; }

# --- ports and processes ----------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A port that nothing listens on now: random (so parallel tests rarely collide) and below
# the kernel's ephemeral range (so no outgoing connection holds it).
free_port() {
	local lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	pick_port 10000 $((lo - 10000)) || bail "no free port"
}

# pick_port FIRST COUNT: a port of FIRST .. FIRST+COUNT-1 that nothing listens on and this
# test has not picked yet (200 random tries); status 1 when none was found
pick_port() {
	local p
	for _ in $(seq 1 200); do
		p=$(($1 + RANDOM % $2))
		grep -qx "$p" "$T/.ports" 2>/dev/null && continue
		port_open 127.0.0.1 "$p" || {
			echo "$p" >>"$T/.ports"
			echo "$p"
			return 0
		}
	done
	return 1
}

# wait_grep FILE ERE [TRIES of 0.05s, default 100]: until a line of FILE matches ERE;
# status 1 when none did in time (daemons write logs and notices after the fact)
wait_grep() {
	local n=${3:-100}
	while [ "$n" -gt 0 ]; do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
		n=$((n - 1))
	done
	return 1
}

wait_port() { # wait_port HOST PORT [TRIES of 0.05s]
	local n=${3:-200}
	while [ "$n" -gt 0 ]; do
		port_open "$1" "$2" && return 0
		sleep 0.05
		n=$((n - 1))
	done
	return 1
}

# start_origin NAME [args...]: starts an origin on a free port; sets ORIGIN_PORT and
# ORIGIN_UUID, and NAME_port / NAME_uuid / NAME_pid variables.
start_origin() {
	local name=$1
	shift
	local out="$T/origin-$name.out"
	"$ORIGIN" -p 0 "$@" >"$out" 2>"$T/origin-$name.err" &
	local pid=$!
	PIDS="$PIDS $pid"
	for _ in $(seq 1 200); do
		grep -q '^READY ' "$out" 2>/dev/null && break
		sleep 0.05
	done
	local line
	line=$(grep '^READY ' "$out") || bail "origin $name did not start"
	ORIGIN_PORT=$(printf '%s' "$line" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
	ORIGIN_UUID=$(printf '%s' "$line" | sed -n 's/.*uuid=\([^ ]*\).*/\1/p')
	eval "${name}_port=$ORIGIN_PORT ${name}_uuid=$ORIGIN_UUID ${name}_pid=$pid"
}

# start_proxyd CONF PORT: starts proxyd in the foreground with debug logging into
# $T/proxyd.log and waits until PORT accepts connections. Sets PROXYD_PID.
start_proxyd() {
	"$PROXYD" -f -c "$1" >>"$T/proxyd.out" 2>>"$T/proxyd.log" &
	PROXYD_PID=$!
	PIDS="$PIDS $PROXYD_PID"
	if ! wait_port 127.0.0.1 "$2"; then
		cat "$T/proxyd.log" | sed 's/^/# /'
		bail "proxyd did not start"
	fi
}

# stop_proxyd: SIGTERM and wait; prints the exit status.
stop_proxyd() {
	kill -TERM "$PROXYD_PID" 2>/dev/null
	local rc=0
	wait "$PROXYD_PID" || rc=$?
	echo "$rc"
}

# raw HOST PORT: sends stdin as raw bytes, prints everything received until the server
# closes or 5 seconds pass.
raw() {
	exec 3<>"/dev/tcp/$1/$2" || return 1
	cat >&3
	timeout 5 cat <&3
	exec 3<&-
}

# origin_stat PORT FIELD: one field of the origin's /stats (connections, requests, active).
origin_stat() {
	curl -s "http://127.0.0.1:$1/stats" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- added for 006-014 (appended; the helpers above are unchanged) ----------------------

# raw_close HOST PORT [SECS]: like raw, but reports how the exchange ended. Prints what
# was received; returns 0 if the server closed the connection (EOF) within SECS seconds
# (default 5), 124 if it was still open then, another non-zero status on a read error
# such as a reset.
raw_close() {
	local rc=0
	exec 3<>"/dev/tcp/$1/$2" || return 2
	cat >&3 2>/dev/null
	timeout "${3:-5}" cat <&3 || rc=$?
	exec 3<&-
	return "$rc"
}

# status_of TEXT: the status code in the first line of a raw HTTP response ("" if none).
status_of() {
	printf '%s\n' "$1" | head -n 1 | sed -n 's/^HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p'
}

# read_response FD [SECS]: reads one HTTP response from the open descriptor FD (status
# line, header fields, then a Content-Length body if any) and prints it, CRLFs kept. Does
# not handle chunked bodies. Returns 1 if the connection ended or SECS (default 5) passed
# first.
read_response() {
	local fd=$1 secs=${2:-5} line len=0 body LC_ALL=C
	IFS= read -r -t "$secs" -u "$fd" line || return 1
	printf '%s\n' "$line"
	while :; do
		IFS= read -r -t "$secs" -u "$fd" line || return 1
		printf '%s\n' "$line"
		line=${line%$'\r'}
		[ -z "$line" ] && break
		case "${line,,}" in
		content-length:*) len=${line#*:}; len=${len//[ 	]/} ;;
		esac
	done
	if [ "$len" -gt 0 ]; then
		IFS= read -r -N "$len" -t "$secs" -u "$fd" body || return 1
		printf '%s' "$body"
	fi
	return 0
}

# free_port_static: like free_port, but outside the kernel's ephemeral port range
# (net.ipv4.ip_local_port_range). While other tests run, thousands of outgoing connections
# and TIME_WAIT sockets hold ephemeral ports; a listener there can fail with "Address
# already in use" although nothing listens on the port.
free_port_static() {
	local lo=32768 hi=60999 p base span
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	if [ "$lo" -gt 11024 ]; then
		base=10000 span=$((lo - 10000))
	else
		base=$((hi + 1)) span=$((65535 - hi))
	fi
	for _ in $(seq 1 200); do
		p=$((base + (RANDOM * 32768 + RANDOM) % span))
		# never the same port twice in one test, even before anything listens on it
		grep -qx "$p" "$T/.ports" 2>/dev/null && continue
		port_open 127.0.0.1 "$p" || {
			echo "$p" >>"$T/.ports"
			echo "$p"
			return 0
		}
	done
	bail "no free port"
}

# dead_port: a privileged port (1..999) that nothing listens on, for "upstream is down"
# tests. Other tests only listen on ports >= 10000, so a parallel test cannot take it.
dead_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((1 + RANDOM % 999))
		port_open 127.0.0.1 "$p" || { echo "$p"; return 0; }
	done
	bail "no dead port"
}

# fill_accept_queue PORT: hold connections to an `origin -N` (backlog 1, never accepts)
# until its accept queue is full, so that the next connect to it hangs. The holders are
# background processes (one whose own connect hangs does no harm), killed at cleanup.
fill_accept_queue() {
	for _ in 1 2 3; do
		(exec 3<>"/dev/tcp/127.0.0.1/$1" && exec sleep 30) 2>/dev/null &
		PIDS="$PIDS $!"
	done
	sleep 0.3
}

# --- DNS: the test responder tests/dnsd (DNSD) ------------------------------------------

# start_dnsd NAME ZONEFILE [args...]: starts dnsd on a free port of 127.0.0.1 (UDP, and
# TCP on the same port) serving ZONEFILE; sets DNSD_PORT and NAME_port / NAME_pid. Its
# query log, one `query QNAME TYPE -> RCODE` line per query, is $T/dnsd-NAME.err. It is
# stopped at exit like the origins.
start_dnsd() {
	local name=$1 zone=$2
	shift 2
	: "${DNSD:?set DNSD to the test DNS responder binary}"
	local out="$T/dnsd-$name.out"
	"$DNSD" -p 0 -z "$zone" "$@" >"$out" 2>"$T/dnsd-$name.err" &
	local pid=$!
	PIDS="$PIDS $pid"
	for _ in $(seq 1 200); do
		grep -q '^READY ' "$out" 2>/dev/null && break
		sleep 0.05
	done
	local line
	if ! line=$(grep '^READY ' "$out"); then
		sed 's/^/# /' "$T/dnsd-$name.err"
		bail "dnsd $name did not start"
	fi
	DNSD_PORT=$(printf '%s' "$line" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
	eval "${name}_port=$DNSD_PORT ${name}_pid=$pid"
}

# dns_set ZONEFILE LINE...: replaces the zone atomically (temporary file, then mv) with
# the given lines (one argument may hold several). dnsd checks the file on every query and
# re-reads it when its inode, size or mtime (to the nanosecond) changed; the new file's
# mtime is set one second past the old one's, so even two changes within the same clock
# tick, with a recycled inode and an equal size, are seen by the next query.
dns_set() {
	local zone=$1 old now
	shift
	now=$(date +%s)
	old=$(stat -c %Y "$zone" 2>/dev/null) || old=0
	[ "$((old + 1))" -gt "$now" ] && now=$((old + 1))
	printf '%s\n' "$@" >"$zone.tmp" &&
		touch -d "@$now" "$zone.tmp" &&
		mv -f "$zone.tmp" "$zone" || bail "dns_set $zone failed"
}

# dns_query PORT QNAME TYPE: one UDP query to dnsd on 127.0.0.1:PORT; prints the answer's
# addresses one per line, or NODATA, NXDOMAIN, SERVFAIL, TIMEOUT (`dnsd -q`).
dns_query() { "$DNSD" -q "$2" "$3" 127.0.0.1 "$1"; }

# dns_count NAME QNAME [TYPE]: how many queries for QNAME (lower case, no trailing dot),
# of TYPE if given, dnsd NAME has logged so far (to check what proxyd caches).
dns_count() {
	grep -c "^query $2 ${3:-[A-Z0-9]*} -> " "$T/dnsd-$1.err"
}

# free_ports N: N distinct free ports (below the ephemeral range), space-separated.
free_ports() {
	local got="" p n=0
	while [ "$n" -lt "$1" ]; do
		p=$(free_port_static)
		case " $got " in *" $p "*) continue ;; esac
		got="$got $p"
		n=$((n + 1))
	done
	echo $got
}
