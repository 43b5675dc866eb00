#!/usr/bin/env bash
# The configuration file and the command line: `proxyd -t` accepts a valid file and
# reports each kind of broken file as FILE:LINE: reason (the line of the fault, in the
# included file when the fault is there); a broken file stops start-up; -h, -v and an
# unknown option; `include conf.d/*.conf` relative to the main file.
. "$TESTLIB"
plan 43

# conf NAME: writes stdin to $T/NAME and prints the path
conf() { cat >"$T/$1"; printf '%s' "$T/$1"; }

# ptest FILE: runs `proxyd -t -c FILE`; sets OUT (stdout and stderr) and RC
ptest() {
	OUT=$("$PROXYD" -t -c "$1" 2>&1)
	RC=$?
}

# broken NAME WHERE REASON: FILE (stdin) fails `proxyd -t` with "WHERE: ...REASON".
# WHERE is FILE:LINE, usually the file itself.
broken() {
	local f=$T/$1.conf
	cat >"$f"
	ptest "$f"
	ok $((RC == 0)) "$1: proxyd -t exits non-zero (got $RC)"
	like "$OUT" "^proxyd: ${2//./\\.}: .*$3" "$1: error names ${2#"$T"/} ($3)"
}

# --- a valid file -------------------------------------------------------------------------
f=$(conf valid.conf <<'CONF'
# a valid configuration
workers 1;
error_log stderr info;
upstream u {
	server 127.0.0.1:1 weight=2;
	keepalive 4;
}
server {
	listen 127.0.0.1:8080;
	proxy_pass http://u;
	client_max_header_size 16k;
	proxy_read_timeout 1m30s;
}
CONF
)
ptest "$f"
is "$RC" 0 "valid file: proxyd -t exits 0"
like "$OUT" 'configuration OK' "valid file: proxyd -t prints 'configuration OK'"

# --- broken files, each with the line of its fault ---------------------------------------
broken unknown-directive "$T/unknown-directive.conf:3" 'unknown directive "frobnicate"' <<'CONF'
upstream u { server 127.0.0.1:1; }
server { listen 127.0.0.1:8080; proxy_pass u; }
frobnicate on;
CONF

broken missing-semicolon "$T/missing-semicolon.conf:2" 'missing ";"' <<'CONF'
upstream u {
	server 127.0.0.1:1
}
server { listen 127.0.0.1:8080; proxy_pass u; }
CONF

broken unbalanced-brace "$T/unbalanced-brace.conf:3" 'unexpected "}"' <<'CONF'
upstream u { server 127.0.0.1:1; }
server { listen 127.0.0.1:8080; proxy_pass u; }
}
CONF

broken unclosed-block "$T/unclosed-block.conf:2" '"server" block is not closed' <<'CONF'
upstream u { server 127.0.0.1:1; }
server {
	listen 127.0.0.1:8080;
	proxy_pass u;
CONF

broken unterminated-string "$T/unterminated-string.conf:3" 'unterminated string' <<'CONF'
upstream u { server 127.0.0.1:1; }
server { listen 127.0.0.1:8080; proxy_pass u; }
error_log "stderr;
workers 1;
CONF

broken bad-size "$T/bad-size.conf:5" 'invalid value "12q" in "client_max_header_size"' <<'CONF'
upstream u { server 127.0.0.1:1; }
server {
	listen 127.0.0.1:8080;
	proxy_pass u;
	client_max_header_size 12q;
}
CONF

broken bad-duration "$T/bad-duration.conf:4" 'invalid value "10x" in "proxy_read_timeout"' <<'CONF'
upstream u { server 127.0.0.1:1; }
server {
	listen 127.0.0.1:8080;
	proxy_read_timeout 10x;
	proxy_pass u;
}
CONF

broken unknown-upstream "$T/unknown-upstream.conf:5" 'no upstream named "nosuch"' <<'CONF'
upstream u { server 127.0.0.1:1; }

server {
	listen 127.0.0.1:8080;
	proxy_pass nosuch;
}
CONF

broken empty-upstream "$T/empty-upstream.conf:2" 'upstream "empty" has no "server"' <<'CONF'
upstream u { server 127.0.0.1:1; }
upstream empty {
	keepalive 2;
}
server { listen 127.0.0.1:8080; proxy_pass u; }
CONF

broken no-listen "$T/no-listen.conf:3" 'no "listen"' <<'CONF'
upstream u { server 127.0.0.1:1; }
server { listen 127.0.0.1:8080; proxy_pass u; }
server {
	proxy_pass u;
}
CONF

broken missing-include "$T/missing-include.conf:2" 'cannot open .*nosuch-file\.conf' <<'CONF'
upstream u { server 127.0.0.1:1; }
include nosuch-file.conf;
server { listen 127.0.0.1:8080; proxy_pass u; }
CONF

# the fault is on line 3 of the included file, which is included from line 2
cat >"$T/inc-part.conf" <<'CONF'
upstream u {
	server 127.0.0.1:1;
	weight_typo 3;
}
CONF
broken error-in-include "$T/inc-part.conf:3" 'unknown directive "weight_typo"' <<'CONF'
workers 1;
include inc-part.conf;
server { listen 127.0.0.1:8080; proxy_pass u; }
CONF

broken wrong-context "$T/wrong-context.conf:3" '"listen" directive is not allowed here' <<'CONF'
upstream u {
	server 127.0.0.1:1;
	listen 127.0.0.1:8080;
}
server { listen 127.0.0.1:8081; proxy_pass u; }
CONF

broken wrong-context-main "$T/wrong-context-main.conf:4" '"workers" directive is not allowed here' <<'CONF'
upstream u { server 127.0.0.1:1; }
server {
	listen 127.0.0.1:8080;
	workers 2;
	proxy_pass u;
}
CONF

broken duplicate-listen "$T/duplicate-listen.conf:5" 'duplicate listen address .*duplicate-listen\.conf:2' <<'CONF'
upstream u { server 127.0.0.1:1; }
server { listen 127.0.0.1:8080; proxy_pass u; }
server {
	proxy_pass u;
	listen 127.0.0.1:8080;
}
CONF

# --- a broken file without -t: proxyd refuses to start ------------------------------------
# -f so that proxyd could not leave a daemon behind if it did start
out=$(timeout 10 "$PROXYD" -f -c "$T/unknown-directive.conf" 2>&1 </dev/null)
rc=$?
ok $((rc == 0 || rc == 124)) "proxyd -c BROKEN (no -t) exits non-zero at once (got $rc)"
like "$out" "unknown-directive\.conf:3: unknown directive" "proxyd -c BROKEN prints the error"

# --- command line -------------------------------------------------------------------------
out=$("$PROXYD" -h 2>/dev/null)
rc=$?
is "$rc" 0 "-h exits 0"
like "$out" '^usage: proxyd' "-h prints the usage on stdout"
out=$("$PROXYD" -v 2>/dev/null)
rc=$?
is "$rc" 0 "-v exits 0"
like "$out" '^proxyd [0-9]+\.[0-9]+' "-v prints the version"
out=$("$PROXYD" -Z 2>&1 >/dev/null)
rc=$?
ok $((rc == 0)) "an unknown option exits non-zero (got $rc)"
like "$out" 'usage: proxyd' "an unknown option prints the usage on stderr"

# --- include with a glob, relative to the main file ---------------------------------------
start_origin a
start_origin b
pa=$(free_port_static)
pb=$(free_port_static)
mkdir -p "$T/g/conf.d/skipped.conf"
cat >"$T/g/conf.d/10-a.conf" <<CONF
upstream a { server 127.0.0.1:$a_port; }
CONF
cat >"$T/g/conf.d/20-b.conf" <<CONF
upstream b { server 127.0.0.1:$b_port; }
CONF
echo 'this is not a config file {' >"$T/g/conf.d/README"
cat >"$T/g/main.conf" <<CONF
workers 1;
error_log stderr info;
include conf.d/*.conf;
server { listen 127.0.0.1:$pa; proxy_pass a; }
server { listen 127.0.0.1:$pb; proxy_pass b; }
CONF
# from another directory: the glob is relative to main.conf, not to the working directory
out=$(cd / && "$PROXYD" -t -c "$T/g/main.conf" 2>&1)
rc=$?
ok $rc "include conf.d/*.conf: proxyd -t accepts upstreams from two files ($out)"
cd / || bail "cd /"
start_proxyd "$T/g/main.conf" "$pb"
wait_port 127.0.0.1 "$pa" || diag "port $pa not open"
is "$(curl -s --max-time 5 "http://127.0.0.1:$pa/")" "$a_uuid" "include glob: upstream a (conf.d/10-a.conf) serves"
is "$(curl -s --max-time 5 "http://127.0.0.1:$pb/")" "$b_uuid" "include glob: upstream b (conf.d/20-b.conf) serves"
