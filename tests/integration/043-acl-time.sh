#!/usr/bin/env bash
# Time windows on a fixed clock (PROXYD_TEST_NOW, honoured by builds configured with
# --enable-test-hooks; other builds skip): `allow time mon-fri 09:00-17:00 UTC; deny all;`
# serves inside the window only (start inclusive, end exclusive, weekends out); the same
# window in Europe/Berlin is shifted by the zone; a forward server with only the allow line
# denies outside by default; a window across midnight (fri 22:00-06:00) belongs to the day
# it starts on, so Saturday 03:00 is in and Friday 03:00 is not.
. "$TESTLIB"

start_origin o1
p_office=$(free_port_static)
p_berlin=$(free_port_static)
p_fwd=$(free_port_static)
p_night=$(free_port_static)
p_ctl=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream up { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$p_office; proxy_pass up;
	allow time mon-fri 09:00-17:00 UTC; deny all; }
server { listen 127.0.0.1:$p_berlin; proxy_pass up;
	allow time mon-fri 09:00-17:00 Europe/Berlin; deny all; }
server { listen 127.0.0.1:$p_fwd; mode forward;
	allow time mon-fri 09:00-17:00 UTC; }
server { listen 127.0.0.1:$p_night; proxy_pass up;
	allow time fri 22:00-06:00 UTC; deny all; }
# control: serves only on 2001-09-09, which the real clock is not
server { listen 127.0.0.1:$p_ctl; proxy_pass up;
	allow date 2001-09-09 UTC; deny all; }
CONF

# at NOW: restart proxyd with the clock fixed at NOW (unix seconds)
at() {
	if [ -n "${PROXYD_PID:-}" ]; then
		stop_proxyd >/dev/null
	fi
	PROXYD_TEST_NOW=$1 start_proxyd "$T/proxyd.conf" "$p_office"
	for p in $p_berlin $p_fwd $p_night $p_ctl; do
		wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"
	done
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1/"; }

at 1000000000 # Sun 2001-09-09 01:46:40 UTC
if [ "$(code "$p_ctl")" != 200 ]; then
	skip_all "PROXYD_TEST_NOW is not honoured (proxyd built without --enable-test-hooks)"
fi
plan 19
pass "control: with PROXYD_TEST_NOW=1000000000 the date rule for 2001-09-09 matches"

# epoch seconds of a UTC time
ts() { date -u -d "$1 UTC" +%s; }
at "$(ts '2026-11-25 10:00')" # Wed
is "$(code "$p_office")" 200 "Wed 10:00 UTC: inside mon-fri 09:00-17:00"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -x "http://127.0.0.1:$p_fwd" \
	"http://127.0.0.1:$o1_port/")" 200 "forward: Wed 10:00 served"
is "$(code "$p_berlin")" 200 "Wed 10:00 UTC is 11:00 in Berlin: inside"
is "$(code "$p_ctl")" 403 "control: another date is denied"
at "$(ts '2026-11-25 09:00')"
is "$(code "$p_office")" 200 "Wed 09:00:00: the start is inclusive"
at "$(ts '2026-11-25 08:59:59')"
is "$(code "$p_office")" 403 "Wed 08:59:59: before the window"
is "$(code "$p_berlin")" 200 "Wed 08:59:59 UTC is 09:59:59 in Berlin: inside"
like "$(curl -s --max-time 5 "http://127.0.0.1:$p_office/")" "denied by policy \\(.*proxyd.conf:5#2\\)" \
	"outside the window the deny all line (2nd on config line 5) decides"
at "$(ts '2026-11-25 17:00')"
is "$(code "$p_office")" 403 "Wed 17:00:00: the end is exclusive"
is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -x "http://127.0.0.1:$p_fwd" \
	"http://127.0.0.1:$o1_port/")" 403 "forward: Wed 17:00 denied by the forward default"
at "$(ts '2026-11-25 16:30')"
is "$(code "$p_berlin")" 403 "Wed 16:30 UTC is 17:30 in Berlin: outside"
at "$(ts '2026-11-28 10:00')" # Sat
is "$(code "$p_office")" 403 "Sat 10:00: not a weekday"

# across midnight: fri 22:00-06:00
at "$(ts '2026-11-27 23:00')"
is "$(code "$p_night")" 200 "Fri 23:00: inside fri 22:00-06:00"
at "$(ts '2026-11-28 03:00')"
is "$(code "$p_night")" 200 "Sat 03:00: inside (the window belongs to Friday, the day it starts)"
at "$(ts '2026-11-28 05:59:59')"
is "$(code "$p_night")" 200 "Sat 05:59:59: still inside"
at "$(ts '2026-11-28 06:00')"
is "$(code "$p_night")" 403 "Sat 06:00: the window has ended"
at "$(ts '2026-11-27 03:00')"
is "$(code "$p_night")" 403 "Fri 03:00: outside (that night belongs to Thursday)"
at "$(ts '2026-11-28 23:00')"
is "$(code "$p_night")" 403 "Sat 23:00: outside (Saturday has no window)"
