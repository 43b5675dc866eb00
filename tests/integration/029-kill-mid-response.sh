#!/usr/bin/env bash
# An origin killed (SIGKILL) in the middle of a response (#3): four origins, round robin,
# default max_fails. A client downloads a 2 GB body (curl --limit-rate, so the transfer is
# still running when the origin dies) with Content-Length, then another one chunked; each
# time the origin serving it is killed once bytes flow. The client must see a truncated
# response (curl exit 18, fewer bytes than announced, no terminating chunk), with nothing
# but the origin's own bytes in the body (proxyd must not append an error page or claim
# success). proxyd keeps running, and the next 100 requests all succeed on the two origins
# left.
. "$TESTLIB"
plan 13

SIZE=2000000000

for i in 1 2 3 4; do
	start_origin o$i
done
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream four {
	server 127.0.0.1:$o1_port;
	server 127.0.0.1:$o2_port;
	server 127.0.0.1:$o3_port;
	server 127.0.0.1:$o4_port;
	keepalive 8;
}
server { listen 127.0.0.1:$port; proxy_pass four; access_log $T/access.log; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

actives() { # the active connections of the four origins (each counts its /stats one)
	echo "$(origin_stat "$o1_port" active) $(origin_stat "$o2_port" active)" \
		"$(origin_stat "$o3_port" active) $(origin_stat "$o4_port" active)"
}
LIVE="1 2 3 4"

# stream NAME PATH: starts the download in the background, finds the origin serving it (the
# one whose active connections grew), waits until the client has some of the body, kills
# that origin with SIGKILL and waits for curl. Sets RC (curl's exit status), GOT (bytes
# received), CODE (status) and VICTIM (origin number).
stream() {
	local name=$1 path=$2 before after i pid
	before=$(actives)
	curl -s -m 40 --limit-rate 8M -o "$T/$name.body" -w '%{http_code} %{size_download}' \
		"http://127.0.0.1:$port$path" >"$T/$name.w" 2>"$T/$name.err" &
	pid=$!
	PIDS="$PIDS $pid"
	VICTIM=""
	for _ in $(seq 1 100); do
		after=$(actives)
		for i in $LIVE; do
			[ "$(echo "$after" | cut -d' ' -f$i)" -gt "$(echo "$before" | cut -d' ' -f$i)" ] &&
				VICTIM=$i
		done
		[ -n "$VICTIM" ] && [ -s "$T/$name.body" ] && break
		sleep 0.05
	done
	[ -n "$VICTIM" ] || bail "$name: no origin serves the download"
	sleep 0.3
	eval "kill -9 \$o${VICTIM}_pid; wait \$o${VICTIM}_pid 2>/dev/null"
	LIVE=$(echo $LIVE | tr ' ' '\n' | grep -v "^$VICTIM\$" | paste -sd' ' -)
	RC=0
	wait "$pid" || RC=$?
	read -r CODE GOT <"$T/$name.w"
	diag "$name: origin $VICTIM killed; curl exit $RC, status $CODE, $GOT bytes of $SIZE"
}
# pattern_only FILE: the body holds nothing but the origin's pattern (a-z repeated)
pattern_only() { [ "$(LC_ALL=C tr -d 'a-z' <"$1" | wc -c | tr -d ' ')" = 0 ]; }

# --- Content-Length ----------------------------------------------------------------------------------
stream cl "/bytes/$SIZE"
is "$CODE:$RC" "200:18" "Content-Length: the client gets the 200 head, then curl exit 18 (partial transfer)"
ok "$([ "$GOT" -gt 0 ] && [ "$GOT" -lt "$SIZE" ] && echo 0 || echo 1)" \
	"Content-Length: the body is cut short ($GOT of $SIZE bytes)"
pattern_only "$T/cl.body"
ok $? "Content-Length: the body is the origin's bytes only, nothing appended"
rm -f "$T/cl.body"

# --- chunked -----------------------------------------------------------------------------------------
stream ch "/chunked/$SIZE?chunk=16384"
is "$CODE:$RC" "200:18" "chunked: the client gets the 200 head, then curl exit 18 (no last chunk)"
ok "$([ "$GOT" -gt 0 ] && [ "$GOT" -lt "$SIZE" ] && echo 0 || echo 1)" \
	"chunked: the body is cut short ($GOT of $SIZE bytes)"
pattern_only "$T/ch.body"
ok $? "chunked: the body is the origin's bytes only, nothing appended"
rm -f "$T/ch.body"

like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd survives both kills"
# the access log must not claim the truncated responses were complete: the two lines have
# status 200 and fewer body bytes than announced (fields: ... "REQUEST" STATUS BYTES ...)
short=$(grep -E "\"GET /(bytes|chunked)/$SIZE[^\"]*\" 200 " "$T/access.log" |
	sed 's/.*" 200 \([0-9]*\) .*/\1/' | awk -v s="$SIZE" '$1 < s' | wc -l | tr -d ' ')
is "$short" 2 "the access log has both interrupted downloads, each with fewer bytes than announced"

# --- afterwards: the two live origins take everything ----------------------------------------------
live_re=""
for i in $LIVE; do
	eval "u=\$o${i}_uuid"
	live_re="$live_re${live_re:+|}$u"
done
urls=""
for i in $(seq 1 50); do urls="$urls http://127.0.0.1:$port/"; done
curl -s -m 30 -w 'CODE=%{http_code}\n' $urls >"$T/after1.out"
rc1=$?
for i in $(seq 1 50); do
	curl -s -m 10 -w 'CODE=%{http_code}\n' "http://127.0.0.1:$port/"
done >"$T/after2.out"
cat "$T/after1.out" "$T/after2.out" >"$T/after.out"
is "$rc1:$(grep -c '^CODE=200$' "$T/after.out")" "0:100" \
	"after the kills: 100 of 100 requests answered 200 (50 keep-alive, 50 new connections)"
is "$(grep -c -E "^($live_re)\$" "$T/after.out")" 100 "after the kills: every answer comes from a live origin"
is "$(grep -E "^($live_re)\$" "$T/after.out" | sort -u | wc -l | tr -d ' ')" 2 \
	"after the kills: both live origins share the load"
is "$(grep -c -v -E "^(CODE=200|$live_re)\$" "$T/after.out")" 0 "after the kills: nothing else in the answers"
like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
