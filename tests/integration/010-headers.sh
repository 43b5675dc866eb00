#!/usr/bin/env bash
# Header rewriting (session_build_request and the response head), seen through the
# origin's /headers echo: X-Forwarded-For/-Proto/-Host and Via are added (and can be
# switched off one by one), hop-by-hop fields are removed in both directions, Host and
# end-to-end fields pass unchanged.
. "$TESTLIB"
plan 30

start_origin o
port=$(free_port_static)
p_xff=$(free_port_static)
p_xfp=$(free_port_static)
p_xfh=$(free_port_static)
p_via=$(free_port_static)
p_close=$(free_port_static)
cat >"$T/proxyd.conf" <<CONF
workers 2;
error_log stderr info;
upstream pooled { server 127.0.0.1:$o_port; keepalive 4; }
upstream fresh { server 127.0.0.1:$o_port; keepalive 0; }
server { listen 127.0.0.1:$port; proxy_pass pooled; }
server { listen 127.0.0.1:$p_xff; proxy_pass pooled; x_forwarded_for off; }
server { listen 127.0.0.1:$p_xfp; proxy_pass pooled; x_forwarded_proto off; }
server { listen 127.0.0.1:$p_xfh; proxy_pass pooled; x_forwarded_host off; }
server { listen 127.0.0.1:$p_via; proxy_pass pooled; via off; }
server { listen 127.0.0.1:$p_close; proxy_pass fresh; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
for p in $p_xff $p_xfp $p_xfh $p_via $p_close; do wait_port 127.0.0.1 "$p" || bail "port $p"; done

# hdrs PORT [curl args]: the request head as the origin received it
hdrs() { local p=$1; shift; curl -s --max-time 5 "$@" "http://127.0.0.1:$p/headers"; }
# field NAME: the lines of field NAME in stdin, joined with "|"
field() { grep -i "^$1:" | tr -d '\r' | paste -sd '|' -; }

# --- X-Forwarded-*, Via ---------------------------------------------------------------------
h=$(hdrs "$port" -H 'Host: app.example:8080')
is "$(field X-Forwarded-For <<<"$h")" "X-Forwarded-For: 127.0.0.1" "X-Forwarded-For carries the client address"
is "$(field X-Forwarded-Proto <<<"$h")" "X-Forwarded-Proto: http" "X-Forwarded-Proto is http"
is "$(field X-Forwarded-Host <<<"$h")" "X-Forwarded-Host: app.example:8080" "X-Forwarded-Host is the Host"
is "$(field Via <<<"$h")" "Via: 1.1 proxyd" "Via is 1.1 proxyd"
is "$(field Host <<<"$h")" "Host: app.example:8080" "Host is passed through unchanged"

h=$(hdrs "$port" -H 'X-Forwarded-For: 1.2.3.4' -H 'X-Forwarded-Proto: https' \
	-H 'X-Forwarded-Host: evil.example' -H 'Via: 1.0 other')
is "$(field X-Forwarded-For <<<"$h")" "X-Forwarded-For: 1.2.3.4, 127.0.0.1" "an incoming X-Forwarded-For is appended to"
is "$(field X-Forwarded-Proto <<<"$h")" "X-Forwarded-Proto: http" "a spoofed X-Forwarded-Proto is replaced"
is "$(field X-Forwarded-Host <<<"$h")" "X-Forwarded-Host: 127.0.0.1:$port" "a spoofed X-Forwarded-Host is replaced"
is "$(field Via <<<"$h")" "Via: 1.0 other, 1.1 proxyd" "an incoming Via is appended to"

h=$(hdrs "$port" -H 'X-Forwarded-For: 1.2.3.4' -H 'X-Forwarded-For: 5.6.7.8')
is "$(field X-Forwarded-For <<<"$h")" "X-Forwarded-For: 1.2.3.4, 5.6.7.8, 127.0.0.1" \
	"two incoming X-Forwarded-For fields become one list, then the client"

# --- hop-by-hop fields are removed, end-to-end ones pass -------------------------------------
h=$(hdrs "$port" -H 'Connection: keep-alive, x-secret' -H 'X-Secret: 1' -H 'Keep-Alive: timeout=5' \
	-H 'TE: trailers' -H 'Trailer: X-Trail' -H 'Upgrade: foo/1' -H 'Proxy-Connection: keep-alive' \
	-H 'Proxy-Authorization: Basic Zm9vOmJhcg==' -H 'X-Custom: yes' -H 'Cookie: a=b; c=d')
for name in Connection Keep-Alive TE Trailer Upgrade Proxy-Connection Proxy-Authorization; do
	is "$(field "$name" <<<"$h")" "" "hop-by-hop $name is not forwarded"
done
is "$(field X-Secret <<<"$h")" "" "X-Secret, named in Connection, is not forwarded"
is "$(field X-Custom <<<"$h")" "X-Custom: yes" "end-to-end X-Custom passes"
is "$(field Cookie <<<"$h")" "Cookie: a=b; c=d" "end-to-end Cookie passes"

# --- each switch turns its header off, and only that one -----------------------------------
# all4 HEADERS: which of the four proxyd adds, in a fixed order
all4() { for n in X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host Via; do
	[ -n "$(field $n <<<"$1")" ] && printf '%s ' "$n"; done; }
is "$(all4 "$(hdrs "$p_xff")")" "X-Forwarded-Proto X-Forwarded-Host Via " "x_forwarded_for off: no X-Forwarded-For, the others stay"
is "$(all4 "$(hdrs "$p_xfp")")" "X-Forwarded-For X-Forwarded-Host Via " "x_forwarded_proto off: no X-Forwarded-Proto, the others stay"
is "$(all4 "$(hdrs "$p_xfh")")" "X-Forwarded-For X-Forwarded-Proto Via " "x_forwarded_host off: no X-Forwarded-Host, the others stay"
is "$(all4 "$(hdrs "$p_via")")" "X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host " "via off: no Via, the others stay"

# --- response side ----------------------------------------------------------------------------
# The origin sends no Keep-Alive field ever (origin.c conn_head_end writes only Connection),
# so the hop-by-hop field it can send is "Connection: close": it does when the request
# asks for it, which proxyd does towards a keepalive 0 upstream.
direct=$(curl -s -i --max-time 5 -H 'Connection: close' "http://127.0.0.1:$o_port/")
is "$(field Connection <<<"$direct")" "Connection: close" "precondition: the origin answers Connection: close when asked to close"
h=$(hdrs "$p_close")
is "$(field Connection <<<"$h")" "Connection: close" "precondition: proxyd asks a keepalive 0 upstream to close"

out=$(curl -s -i --max-time 5 -w 'connects=%{num_connects}\n' "http://127.0.0.1:$p_close/" \
	-w 'connects=%{num_connects}\n' "http://127.0.0.1:$p_close/")
is "$(field Connection <<<"$out")" "" "the origin's Connection: close is not relayed to a keep-alive client"
is "$(grep -o 'connects=[0-9]*' <<<"$out" | paste -sd ' ' -)" "connects=1 connects=0" \
	"and the client's connection is reused for a second request"
like "$(tr '\r\n' '  ' <<<"$out")" "X-Origin-Id: $o_uuid  X-Origin-Conn: [0-9]+  X-Origin-Req: 1  " \
	"X-Origin-Id, -Conn and -Req are relayed"
like "$(field Date <<<"$out")" '^Date: [A-Z][a-z]{2}, [0-9]{2} ' "the origin's Date is relayed"
