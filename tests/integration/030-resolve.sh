#!/usr/bin/env bash
# Upstream servers named by DNS: `server NAME:PORT resolve` with `resolver` pointing at a
# DNS responder on loopback. A changed A record changes the servers without a restart
# (within valid=, or within the record's TTL when that is shorter);
# two records spread the load over both; a name that stops existing leaves no server
# (503); a reload keeps the addresses it had (no 503 window); bad lines are refused.
. "$TESTLIB"
plan 13

start_origin a1 -a 127.0.0.2
start_origin a2 -a 127.0.0.3 -p "$a1_port"
[ "$a2_port" = "$a1_port" ] || bail "second origin did not get port $a1_port"
zone="$T/zone"
dns_set "$zone" "app.test A 127.0.0.2 300"
start_dnsd dns "$zone"
port=$(free_port_static)
write_conf() {
	cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
resolver 127.0.0.1:$dns_port valid=${1:-300ms};
resolver_timeout 1s;
upstream app { server app.test:$a1_port resolve max_fails=0; }
server { listen 127.0.0.1:$port; proxy_pass app; }
CONF
}
write_conf
start_proxyd "$T/proxyd.conf" "$port"

# the first lookup runs at start; give it a moment
answers() { # answers N: the bodies of N requests, one per line
	for _ in $(seq 1 "$1"); do curl -s --max-time 5 "http://127.0.0.1:$port/"; echo; done
}
wait_only() { # wait_only UUID: up to 5 s until 10 answers in a row are UUID
	for _ in $(seq 1 50); do
		[ "$(answers 10 | grep -v '^$' | sort -u)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
wait_only "$a1_uuid"; ok $? "the name's A record is the server"

dns_set "$zone" "app.test A 127.0.0.3 300"
wait_only "$a2_uuid"; ok $? "a changed A record moves the traffic without a restart"
like "$(cat "$T/proxyd.log")" "server app.test:$a1_port resolve: 127.0.0.3:$a1_port" \
	"the change is logged"

dns_set "$zone" "app.test A 127.0.0.2 300
app.test A 127.0.0.3 300"
seen=""
for _ in $(seq 1 50); do
	seen=$(answers 10 | sort -u | tr '\n' ' ')
	case "$seen" in *"$a1_uuid"*"$a2_uuid"* | *"$a2_uuid"*"$a1_uuid"*) break ;; esac
	sleep 0.1
done
like "$seen" "$a1_uuid" "two A records: the first address serves"
like "$seen" "$a2_uuid" "two A records: the second address serves"

# a reload keeps the addresses: no request fails while the new generation looks up
write_conf 30s
kill -HUP "$PROXYD_PID"
fails=0
for _ in $(seq 1 40); do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/")
	[ "$code" = 200 ] || fails=$((fails + 1))
done
is "$fails" 0 "no failed request across a reload"
q_before=$(dns_count dns app.test A)
sleep 1
answers 20 >/dev/null
q_after=$(dns_count dns app.test A)
[ $((q_after - q_before)) -le 2 ]
ok $? "valid=30s: no new lookups every request ($q_before -> $q_after)"

# valid=30s, but the record lives 1s (from the lookup a reload starts with): the next
# change is seen within about a second, not 30
dns_set "$zone" "app.test A 127.0.0.2 1"
kill -HUP "$PROXYD_PID"
wait_only "$a1_uuid" || true
dns_set "$zone" "app.test A 127.0.0.3 1"
moved=1
for _ in $(seq 1 40); do
	[ "$(answers 5 | grep -v '^$' | sort -u)" = "$a2_uuid" ] && { moved=0; break; }
	sleep 0.1
done
ok $moved "valid=30s and a 1s TTL: a changed record is followed within its TTL"

# the name disappears: no server left
write_conf 300ms
kill -HUP "$PROXYD_PID"
sleep 0.5
dns_set "$zone" "app.test NXDOMAIN"
code=""
for _ in $(seq 1 50); do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/")
	[ "$code" = 503 ] && break
	sleep 0.1
done
is "$code" 503 "a name that no longer exists leaves no server: 503"
dns_set "$zone" "app.test A 127.0.0.3 300"
wait_only "$a2_uuid"; ok $? "and it comes back when the name does"

# configuration errors
printf 'upstream u { server 127.0.0.1:80 resolve; }\nserver { listen 127.0.0.1:1; proxy_pass u; }\n' >"$T/bad1.conf"
like "$("$PROXYD" -t -c "$T/bad1.conf" 2>&1)" "bad1.conf:1: .*needs a host name, not an address" \
	"resolve with an address is refused"
printf 'upstream u { server app.test resolve; }\nserver { listen 127.0.0.1:1; proxy_pass u; }\n' >"$T/bad2.conf"
like "$("$PROXYD" -t -c "$T/bad2.conf" 2>&1)" "bad2.conf:1: .*NAME:PORT" "resolve without a port is refused"
printf 'resolver 127.0.0.1:5353 valid=0;\nupstream u { server a.test:80 resolve; }\nserver { listen 127.0.0.1:1; proxy_pass u; }\n' >"$T/bad3.conf"
like "$("$PROXYD" -t -c "$T/bad3.conf" 2>&1)" "bad3.conf:1: " "resolver valid=0 is refused"
