#!/usr/bin/env bash
# An origin dies under load and comes back: six origins (max_fails=1 fail_timeout=2s,
# keepalive 8, workers 2, default proxy_next_upstream). 300 GETs in three keep-alive curl
# runs of 100; after the first run one origin is killed with SIGKILL while proxyd holds
# pooled connections to it. No client request may fail (a reset pooled connection and a
# refused connect are retried for GET), the dead origin's UUID must not appear again, and
# once it is restarted on the same port with the same UUID it must get requests again
# after fail_timeout.
. "$TESTLIB"
plan 12

for i in 1 2 3 4 5; do
	start_origin o$i
done
# the victim listens outside the ephemeral range, so that its port is free to listen on
# again after the kill (no outgoing connection can hold it meanwhile)
vport=$(free_port_static)
start_origin o6 -p "$vport"
is "$o6_port" "$vport" "the victim origin listens on the chosen port"
servers=""
for i in 1 2 3 4 5 6; do
	eval "p=\$o${i}_port"
	servers="$servers server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"
done
port=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream six { $servers keepalive 8; }
server { listen 127.0.0.1:$port; proxy_pass six; }
CONF
start_proxyd "$T/proxyd.conf" "$port"

urls=""
for i in $(seq 1 100); do urls="$urls http://127.0.0.1:$port/"; done
# batch NAME: 100 GETs on one connection; each answer is the body (UUID and newline)
# followed by a line CODE=<status>. Sets BATCH_RC to curl's exit status.
batch() {
	BATCH_RC=0
	curl -s -m 30 -w 'CODE=%{http_code}\n' $urls >"$T/$1.out" 2>"$T/$1.err" || BATCH_RC=$?
}
# codes FILE: the status codes that are not 200, with counts, on one line ("" if none)
codes() { grep '^CODE=' "$1" | grep -v '^CODE=200$' | sort | uniq -c | tr -s ' \n' ' '; }

batch b1
is "$BATCH_RC:$(grep -c '^CODE=200$' "$T/b1.out")" "0:100" "before the kill: 100 of 100 answered 200"
# round robin over six: each origin gets 16 or 17 of 100
v=$(grep -c "^$o6_uuid\$" "$T/b1.out")
ok "$([ "$v" -ge 16 ] && [ "$v" -le 17 ] && echo 0 || echo 1)" "before the kill: the victim gets its share ($v of 100)"

kill -9 "$o6_pid"
wait "$o6_pid" 2>/dev/null
port_open 127.0.0.1 "$vport" && bail "the killed origin still listens"

batch b2
batch2_rc=$BATCH_RC
batch b3
batch3_rc=$BATCH_RC
cat "$T/b2.out" "$T/b3.out" >"$T/after.out"
n200=$(grep -c '^CODE=200$' "$T/after.out")
is "$batch2_rc:$batch3_rc:$n200" "0:0:200" "after the kill: 200 of 200 answered 200, no failure"
bad=$(codes "$T/after.out")
is "$bad" "" "after the kill: no status other than 200"
live=$(grep -c -E "^($o1_uuid|$o2_uuid|$o3_uuid|$o4_uuid|$o5_uuid)\$" "$T/after.out")
is "$live" 200 "after the kill: every answer is the UUID of a live origin"
is "$(grep -c "^$o6_uuid\$" "$T/after.out")" 0 "after the kill: the dead origin's UUID is gone"
seen=$(grep -E "^($o1_uuid|$o2_uuid|$o3_uuid|$o4_uuid|$o5_uuid)\$" "$T/after.out" | sort -u | wc -l)
is "$seen" 5 "after the kill: the five live origins share the load"
if [ -n "$bad" ] || [ "$n200" != 200 ]; then
	diag "failed answers: $bad (curl rc $batch2_rc, $batch3_rc)"
	grep -v -E '^CODE=200$' "$T/after.out" | grep -v -E "^($o1_uuid|$o2_uuid|$o3_uuid|$o4_uuid|$o5_uuid)\$" |
		head -20 | sed 's/^/#   /'
	grep -i -E 'error|warn|crit' "$T/proxyd.log" | head -20 | sed 's/^/#   log: /'
fi

# restart the victim on the same port with the same UUID
"$ORIGIN" -p "$vport" -u "$o6_uuid" >"$T/origin-o6b.out" 2>"$T/origin-o6b.err" &
PIDS="$PIDS $!"
for _ in $(seq 1 200); do
	grep -q '^READY ' "$T/origin-o6b.out" 2>/dev/null && break
	sleep 0.05
done
like "$(cat "$T/origin-o6b.out")" "^READY port=$vport uuid=$o6_uuid" \
	"the origin restarts on the same port with the same UUID"

# fail_timeout is 2s: poll for up to 5s (8s under a sanitizer) with small batches
limit=$((SECONDS + ${SANITIZED:+8}${SANITIZED:-5}))
back=0 fails=0 polls=0
while [ "$SECONDS" -le "$limit" ]; do
	polls=$((polls + 1))
	curl -s -m 10 -w 'CODE=%{http_code}\n' $(echo $urls | cut -d' ' -f1-12) >"$T/poll.out" 2>/dev/null
	fails=$((fails + $(grep '^CODE=' "$T/poll.out" | grep -vc '^CODE=200$')))
	if grep -q "^$o6_uuid\$" "$T/poll.out"; then
		back=1
		break
	fi
	sleep 0.25
done
diag "the restarted origin answered after $polls polls"
is "$back" 1 "after fail_timeout the restarted origin gets requests again"
is "$fails" 0 "no failed request while waiting for it"
like "$(kill -0 "$PROXYD_PID" 2>&1 && echo alive)" "alive" "proxyd is still running"
