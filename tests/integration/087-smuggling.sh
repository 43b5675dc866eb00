#!/usr/bin/env bash
# Request smuggling and desync, end to end: a catalog of known vectors sent as raw bytes to
# proxyd in reverse mode (origin-form) and in forward mode (absolute-form, its own path),
# with an origin that logs every request head it reads and every request it completes
# (origin -l). For each vector: the status (RFC 9112/9110 as proxyd's strictness policy in
# doc/HACKING.md reads them), the connection closed after a framing error, and the key
# assertion: nothing of a refused request reached the origin, and where a request is
# forwarded, the origin saw exactly what proxyd framed (the body length, the next request).
# Then responses: an origin that frames a response two ways gets 502 and its bytes are never
# read as the next response on a reused connection.
. "$TESTLIB"

start_origin o -l
OLOG="$T/origin-o.err"
read -r port fport sport sfport <<<"$(free_ports 4)"
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream o { server 127.0.0.1:$o_port; keepalive 4; }
server {
	listen 127.0.0.1:$port;
	proxy_pass o;
	client_max_header_size 4k;
	client_max_target 1k;
	client_max_body_size 1m;
}
server {
	listen 127.0.0.1:$fport;
	mode forward;
	anonymize off;
	connect_ports $o_port;
	client_max_header_size 4k;
	client_max_target 1k;
	client_max_body_size 1m;
}
server { listen 127.0.0.1:$sport; proxy_pass o; client_max_body_size 10; }
server { listen 127.0.0.1:$sfport; mode forward; client_max_body_size 10; }
CONF
start_proxyd "$T/proxyd.conf" "$port"
for p in $fport $sport $sfport; do wait_port 127.0.0.1 "$p" || bail "listener $p did not start"; done

# send PORT: the raw request on stdin; sets OUT (what came back) and RC (raw_close's
# status: 0 when proxyd closed the connection within 5 seconds).
send() {
	OUT=$(raw_close 127.0.0.1 "$1" 5; echo "#rc=$?")
	RC=${OUT##*#rc=}
	OUT=${OUT%#rc=*}
}

# seen REGEX: how many lines of the origin's request log match (after a round trip to the
# origin, which serves connections in order on one event loop, so what proxyd wrote to it
# before closing the client connection has been read).
seen() {
	curl -s --max-time 5 "http://127.0.0.1:$o_port/stats" >/dev/null
	grep -c -E -- "$1" "$OLOG"
}

# A vector's request target: origin-form in reverse mode, absolute-form in forward mode.
# Every target carries a tag /sm/MODE-N so the origin's log tells which vector reached it.
N=0
tgt() { # tgt SUFFIX: the target for the current vector, e.g. "/sm/r7" + SUFFIX
	printf '%s/sm/%s%s%s' "$PFX" "$M" "$N" "${1:-}"
}

# reject NAME WANT: the raw request on stdin (built with tgt) is refused with WANT, the
# connection is closed, and no request head with the vector's tag reached the origin.
reject() {
	send "$P"
	is "$(status_of "$OUT")" "$2" "$M: $1: $2"
	is "$RC" 0 "$M: $1: connection closed after the $2"
	is "$(seen "/sm/$M$N([ -]|$)")" 0 "$M: $1: nothing reached the origin"
	N=$((N + 1))
}

# reject_body NAME: a valid head with a chunked body whose framing is bad. proxyd may have
# forwarded the head before the body arrived (its own chunked framing), so the origin may
# log the HEAD; it must never complete the request (no DONE: the body was not passed on as
# complete), never see the smuggled request tagged -smuggled, and the client gets 400 and
# a closed connection (or WANT).
reject_body() { # reject_body NAME [WANT, default 400]
	local want=${2:-400}
	send "$P"
	is "$(status_of "$OUT")" "$want" "$M: $1: $want"
	is "$RC" 0 "$M: $1: connection closed after the $want"
	is "$(seen "^DONE .*/sm/$M$N |/sm/$M$N-smuggled")" 0 \
		"$M: $1: the origin never completed it nor saw a smuggled request"
	N=$((N + 1))
}

H='Host: t\r\n'
GOOD='Content-Length: 5\r\n\r\nhello'

catalog() { # catalog MODE PORT PREFIX
	M=$1 P=$2 PFX=$3 N=0
	# --- RFC 9112 6.1, 6.3: Transfer-Encoding and Content-Length ----------------------
	reject "6.3 CL and TE together" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
	reject "6.3 TE then CL" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n')
	reject "6.3 CL with lower-case te and trailing OWS" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'content-length: 5\r\ntransfer-encoding: Chunked \r\n\r\n0\r\n\r\n')
	reject "6.1 TE: chunked, chunked" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n')
	reject "6.1 TE chunked in two fields" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
	reject "5.2 TE chunked by obs-fold continuation" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n')
	reject "5.2 obs-fold after TE: identity" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: identity\r\n\tchunked\r\n\r\n0\r\n\r\n')
	reject "5.1 'Transfer-Encoding : chunked' (space before colon)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n')
	reject "5.1 'Transfer-Encoding\\t: chunked' (tab before colon)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n')
	reject "5.5 TE value with a vertical tab" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding:\013chunked\r\n\r\n0\r\n\r\n')
	reject "5.5 TE value with a form feed" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: \014chunked\r\n\r\n0\r\n\r\n')
	reject "6.1 TE 'chun\\tked' (tab inside the token)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chun\tked\r\n\r\n0\r\n\r\n')
	reject "6.1 TE with a control byte after chunked" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chunked\001\r\n\r\n0\r\n\r\n')
	reject "2.2 leading whitespace before the TE field line" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n"' Transfer-Encoding: chunked\r\n'"$H"'\r\n0\r\n\r\n')
	reject "6.1 TE: xchunked (unknown coding)" 501 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n')
	reject "6.1 TE: identity (not a coding proxyd decodes)" 501 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: identity\r\n\r\n0\r\n\r\n')
	reject "6.1 TE: gzip, chunked (unknown coding before chunked)" 501 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n')
	reject "6.3 TE: chunked, gzip (chunked not last)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n')
	reject "6.1 TE: chunked;q=1 (parameter on chunked)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n')
	reject "6.1 TE: empty value" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: \r\n\r\n0\r\n\r\n')
	reject "6.1 TE: ', chunked' (empty list element)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n')
	reject "6.1 TE in HTTP/1.0 (faulty framing)" 400 < <(printf "POST $(tgt) HTTP/1.0\r\n$H"'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
	reject "6.1 TE in HTTP/1.0 with Content-Length" 400 < <(printf "POST $(tgt) HTTP/1.0\r\n$H"'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello')
	reject "6.2 duplicate differing Content-Length" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!')
	# RFC 9110 8.6 lets a recipient accept a list of identical values; proxyd refuses every
	# list and every duplicate (policy), the same way for all spellings.
	reject "9110 8.6 duplicate equal Content-Length (policy: refused)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello')
	reject "9110 8.6 Content-Length: 5,5 (policy: refused)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5,5\r\n\r\nhello')
	reject "9110 8.6 Content-Length: 5, 5 (policy: refused)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5, 5\r\n\r\nhello')
	reject "9110 8.6 Content-Length: 5 5" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5 5\r\n\r\nhello')
	reject "9110 8.6 Content-Length: +5" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: +5\r\n\r\nhello')
	reject "9110 8.6 Content-Length: -1" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: -1\r\n\r\nhello')
	reject "9110 8.6 Content-Length: 0x5" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 0x5\r\n\r\nhello')
	reject "9110 8.6 Content-Length: empty" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: \r\n\r\nhello')
	reject "9110 8.6 Content-Length with a NUL after the digits" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 5\0\r\n\r\nhello')
	reject "9110 8.6 Content-Length of 23 digits (overflow)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 18446744073709551621\r\n\r\nhello')
	reject "9110 8.6 Content-Length of 19 digits (over int64)" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 9223372036854775813\r\n\r\nhello')
	reject "9110 15.5.14 Content-Length over client_max_body_size" 413 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content-Length: 999999999999999999\r\n\r\nhello')

	# --- RFC 9112 2.2, 3, 5: the head's syntax --------------------------------------------
	reject "2.2 bare LF line endings" 400 < <(printf "POST $(tgt) HTTP/1.1\n"'Host: t\nContent-Length: 5\n\nhello')
	reject "2.2 one bare LF before Transfer-Encoding" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'X-A: 1\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
	reject "2.2 bare CR in the request line" 400 < <(printf "GET $(tgt) HTTP/1.1\r$H\r\n")
	reject "2.2 bare CR ending a field line" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'X-A: 1\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
	reject "5.5 NUL in a header value" 400 < <(printf "GET $(tgt) HTTP/1.1\r\n$H"'X-A: a\0b\r\n\r\n')
	reject "5.1 header name with a space" 400 < <(printf "GET $(tgt) HTTP/1.1\r\n$H"'X A: 1\r\n\r\n')
	reject "5.1 header name 'Content Length'" 400 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"'Content Length: 5\r\n\r\nhello')
	reject "5.1 empty header name" 400 < <(printf "GET $(tgt) HTTP/1.1\r\n$H"': x\r\n\r\n')
	reject "3 request line with two spaces" 400 < <(printf "GET  $(tgt) HTTP/1.1\r\n$H\r\n")
	reject "3 request line with two spaces before the version" 400 < <(printf "GET $(tgt)  HTTP/1.1\r\n$H\r\n")
	reject "3 request line with a tab" 400 < <(printf "GET\t$(tgt) HTTP/1.1\r\n$H\r\n")
	reject "3 request line with a trailing space" 400 < <(printf "GET $(tgt) HTTP/1.1 \r\n$H\r\n")
	reject "3.2 target with a space (two-part request line)" 400 < <(printf "GET $(tgt) x HTTP/1.1\r\n$H\r\n")
	reject "2.3 lower-case version" 400 < <(printf "GET $(tgt) http/1.1\r\n$H\r\n")
	reject "3.2 target over client_max_target" 414 < <(printf "GET $(tgt)$(printf '%*s' 1100 '' | tr ' ' a) HTTP/1.1\r\n$H\r\n")
	reject "5 header block over client_max_header_size" 431 < <(printf "POST $(tgt) HTTP/1.1\r\n$H"
		for i in 1 2 3 4 5; do printf 'X-Big-%s: %1000s\r\n' $i x; done
		printf 'Content-Length: 5\r\n\r\nhello')
	reject "3.2 two Host fields" 400 < <(printf "GET $(tgt) HTTP/1.1\r\n$H"'Host: u\r\n\r\n')

	# --- RFC 9112 7.1: chunked framing of a request body ----------------------------------
	reject_body "7.1 chunk size '0x5'" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'0x5\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk size of 17 hex digits" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'10000000000000005\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk size 2^64-1 (16 hex digits)" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'ffffffffffffffff\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk size '-1'" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'-1\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk size ' 5' (leading space)" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"' 5\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk size '5 ' before CRLF" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5 \r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk-size line ended by bare LF" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5\nhello\r\n0\r\n\r\n')
	reject_body "7.1 chunk data ended by bare LF" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5\r\nhello\n0\r\n\r\n')
	reject_body "7.1 last-chunk ended by bare LF" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5\r\nhello\r\n0\n\r\n')
	reject_body "7.1 more data than the chunk size" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'3\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1.1 chunk extension with a bare CR" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5;a\rb\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1.1 chunk extension with a bare LF" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5;a\nb\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1.1 chunk extension value with a bare LF" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5;a=b\n\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1.1 quoted-string extension with a control byte" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5;a="x\001y"\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1.1 quoted-string extension with a CRLF inside" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5;a="x\r\n0\r\n\r\nGET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n"\r\nhello\r\n0\r\n\r\n' "$M$N")
	reject_body "7.1.1 empty chunk extension ';'" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5;\r\nhello\r\n0\r\n\r\n')
	reject_body "7.1 last-chunk without the final CRLF, then a request" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'0\r\nGET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n' "$M$N")
	reject_body "7.1.2 trailer field with obs-fold" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'0\r\nX-T: a\r\n b\r\n\r\n')
	reject_body "7.1.2 trailer field with a space before the colon" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'0\r\nContent-Length : 5\r\n\r\n')

	# --- accepted, and forwarded as proxyd framed it ---------------------------------------
	# A quoted-string chunk extension with ';', '=' and an escaped quote is valid (7.1.1):
	# the extension is dropped and the origin gets the 5 data bytes.
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"'5;a="x;y=\\"z";b=c\r\nhello\r\n0\r\n\r\n')
	is "$(status_of "$OUT")" 404 "$M: 7.1.1 quoted-string extension with odd characters is accepted (origin's 404)"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=5$")" 1 "$M: 7.1.1 the origin got the 5 data bytes"
	N=$((N + 1))

	# Trailer fields named Content-Length and Transfer-Encoding do not change the framing
	# (7.1.2; proxyd drops trailers): the pipelined request after the body is the next one.
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n'"GET $(tgt -next) HTTP/1.1\r\n${H}Connection: close\r\n\r\n")
	is "$(grep -c '^HTTP/1.1 404 ' <<<"$OUT")" 2 "$M: 7.1.2 CL/TE trailers: two responses"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=5$")" 1 "$M: 7.1.2 CL/TE trailers: the body is the 5 chunked bytes"
	is "$(seen "^DONE GET .*/sm/$M$N-next HTTP/1.1 body=0$")" 1 "$M: 7.1.2 CL/TE trailers: the next request is forwarded as such"
	is "$(seen "^HEAD .*/sm/$M$N")" 2 "$M: 7.1.2 CL/TE trailers: nothing else reached the origin"
	N=$((N + 1))

	# Content-Length shorter than what is sent (6.2): the rest is the next request, parsed
	# with its own checks. Here it is valid and forwarded after exactly 5 bytes of body.
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello"'GET '"$(tgt -next)"' HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
	is "$(grep -c '^HTTP/1.1 404 ' <<<"$OUT")" 2 "$M: 6.2 extra bytes after the body: two responses"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=5$")" 1 "$M: 6.2 the origin got a body of exactly Content-Length bytes"
	is "$(seen "^DONE GET .*/sm/$M$N-next HTTP/1.1 body=0$")" 1 "$M: 6.2 the extra bytes reached the origin as their own request"
	N=$((N + 1))

	# ... and here the rest is a CL+TE request: the first is answered, the second refused.
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello"'POST '"$(tgt -smuggled)"' HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
	is "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$OUT" | tr '\n' ,)" "HTTP/1.1 404,HTTP/1.1 400," "$M: 6.2 extra bytes that are a CL+TE request: 404 then 400"
	is "$RC" 0 "$M: 6.2 extra bytes that are a CL+TE request: connection closed"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=5$")" 1 "$M: 6.2 the first request was forwarded with its 5 bytes"
	is "$(seen "/sm/$M$N-smuggled")" 0 "$M: 6.2 the CL+TE request did not reach the origin"
	N=$((N + 1))

	# ... and here the rest is garbage: answered, then 400.
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nhello\r\n\r\n")
	is "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$OUT" | tr '\n' ,)" "HTTP/1.1 404,HTTP/1.1 400," "$M: 6.2 Content-Length 2 with 5 bytes sent: 404 then 400 for 'llo'"
	is "$RC" 0 "$M: 6.2 Content-Length 2 with 5 bytes sent: connection closed"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=2$")" 1 "$M: 6.2 the origin got 2 bytes of body"
	is "$(seen "^HEAD .*/sm/$M$N|^HEAD llo")" 1 "$M: 6.2 'llo' did not reach the origin"
	N=$((N + 1))

	# Expect: 100-continue (RFC 9110 10.1.1) with a request in the body: it is body.
	body=$(printf 'GET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n' "$M$N")
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: ${#body}\r\nConnection: close\r\n\r\n%s" "$body")
	like "$OUT" '^HTTP/1.1 (100 Continue|404 )' "$M: 9110 10.1.1 Expect: 100-continue answered"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=${#body}$")" 1 "$M: 9110 10.1.1 the request in the body is forwarded as ${#body} bytes of body"
	is "$(seen "/sm/$M$N-smuggled")" 0 "$M: 9110 10.1.1 the request in the body never reached the origin as a request"
	N=$((N + 1))

	# TE with a leading tab (OWS) and 'Chunked' in another case is valid (5.5, 6.1).
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding:\tChunked\r\nConnection: close\r\n\r\n"'5\r\nhello\r\n0\r\n\r\n')
	is "$(status_of "$OUT")" 404 "$M: 6.1 'Transfer-Encoding:\\tChunked' is accepted"
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=5$")" 1 "$M: 6.1 the origin got the 5 bytes"
	N=$((N + 1))

	# --- RFC 9110 7.6.1: connection options naming end-to-end or framing fields -----------
	# "Connection: host" must not strip Host: the origin would pick a default virtual host
	# for a request proxyd routed by another name (forward mode: 9112 3.2.2 wants the
	# target's authority as Host).
	send "$P" < <(printf "GET $PFX/headers?sm=$M$N HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\nConnection: Host, close\r\n\r\n")
	is "$(status_of "$OUT")" 200 "$M: 9110 7.6.1 'Connection: Host' is accepted"
	is "$(grep -ci "^Host: 127\\.0\\.0\\.1:$o_port\$" <<<"$OUT")" 1 \
		"$M: 9110 7.6.1 'Connection: Host' does not strip Host (9112 3.2: every HTTP/1.1 request has one)"
	N=$((N + 1))
	# Framing fields listed as connection options: proxyd writes the framing itself, so
	# the body stays a body and the request in it never reaches the origin as a request.
	body=$(printf 'GET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n' "$M$N")
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Connection: Content-Length\r\nContent-Length: ${#body}\r\n\r\n%s" "$body"
		printf "POST $(tgt -te) HTTP/1.1\r\n${H}Connection: Transfer-Encoding, close\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" "${#body}" "$body")
	is "$(grep -c '^HTTP/1.1 404 ' <<<"$OUT")" 2 "$M: 9110 7.6.1 'Connection: Content-Length' / 'Transfer-Encoding': both answered"
	is "$(seen "^DONE POST .*/sm/$M$N(-te)? HTTP/1.1 body=${#body}$")" 2 \
		"$M: 9110 7.6.1 framing fields as connection options: the bodies arrive as bodies"
	is "$(seen "/sm/$M$N-smuggled")" 0 "$M: 9110 7.6.1 the request in the body never reached the origin"
	N=$((N + 1))

	# An Upgrade the origin does not take (RFC 9110 7.8: no 101) leaves the connection in
	# HTTP: the next request is parsed by proxyd (its Via), not tunnelled raw. h2c is not
	# passed on at all.
	send "$P" < <(printf "GET $PFX/headers?sm=$M$N-ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		printf "GET $PFX/headers?sm=$M$N-h2c HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
		printf "GET $PFX/headers?sm=$M$N-after HTTP/1.1\r\n${H}Connection: close\r\n\r\n")
	is "$(grep -c '^HTTP/1.1 200 ' <<<"$OUT")" 3 "$M: 9110 7.8 Upgrade without 101: three answers"
	is "$(grep -c '^Via: 1.1 proxyd' <<<"$OUT")" 3 "$M: 9110 7.8 each of them went through proxyd's parser (Via)"
	unlike "$OUT" '^Upgrade: h2c|^HTTP2-Settings' "$M: 9110 7.8 an h2c upgrade is not passed on"
	N=$((N + 1))

	# Responses without a body on a kept-alive connection (RFC 9112 6.3: HEAD, 304, 204):
	# the Content-Length of the HEAD answer is not read as a body, so each answer is whole.
	send "$P" < <(printf "HEAD $PFX/bytes/100?sm=$M$N HTTP/1.1\r\n$H\r\n"
		printf "GET $PFX/?notmod=1&sm=$M$N HTTP/1.1\r\n${H}If-None-Match: \"x\"\r\n\r\n"
		printf "GET $PFX/status/204?sm=$M$N HTTP/1.1\r\n$H\r\n"
		printf "GET $PFX/?sm=$M$N HTTP/1.1\r\n${H}Connection: close\r\n\r\n")
	is "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$OUT" | tr '\n' ,)" "HTTP/1.1 200,HTTP/1.1 304,HTTP/1.1 204,HTTP/1.1 200," \
		"$M: 9112 6.3 HEAD, 304, 204 then GET on one connection: four whole answers"
	is "$(tail -n 1 <<<"${OUT%$'\n'}")" "$o_uuid" "$M: 9112 6.3 the last answer's body is the origin's, unmixed"
	N=$((N + 1))
}

catalog r "$port" ""
catalog f "$fport" "http://127.0.0.1:$o_port"

# --- RFC 9110 9.3.6: CONNECT has no content --------------------------------------------
# To a port connect_ports allows: with a body, the bytes after the head would be body to
# one reader and tunnel data to another (here a request straight to the origin).
M=f-connect N=0 P=$fport
body=$(printf 'GET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n' "$M$N")
reject_body "9110 9.3.6 CONNECT with Content-Length and a request as its body" 400 < <(printf "CONNECT 127.0.0.1:$o_port HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\nContent-Length: ${#body}\r\n\r\n%s" "$body")
body=$(printf 'GET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n' "$M$N")
reject_body "9110 9.3.6 CONNECT with Transfer-Encoding: chunked" 400 < <(printf "CONNECT 127.0.0.1:$o_port HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" "${#body}" "$body")
# Content-Length: 0 states no content: the tunnel opens, and what follows is tunnel data.
send "$P" < <(printf "CONNECT 127.0.0.1:$o_port HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\nContent-Length: 0\r\n\r\nGET /sm/$M$N-tunnel HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
is "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$OUT" | tr '\n' ,)" "HTTP/1.1 200,HTTP/1.1 404," "f: 9110 9.3.6 CONNECT with Content-Length: 0 opens the tunnel"
is "$(seen "^DONE GET /sm/$M$N-tunnel ")" 1 "f: 9110 9.3.6 the bytes after it are tunnel data"

# --- client_max_body_size 10 and a chunked body of 11 bytes, all sent at once -------------
# The chunk that crosses the limit is refused at its chunk-size line, so the origin never
# gets the body complete: a 413 says the request was not processed (RFC 9110 15.5.14).
for m in r f; do
	[ $m = r ] && P=$sport PFX="" || P=$sfport PFX="http://127.0.0.1:$o_port"
	M=$m-limit N=0
	reject_body "9110 15.5.14 chunked body of 11 bytes over client_max_body_size 10" 413 < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\nGET /sm/%s-smuggled HTTP/1.1\r\nHost: t\r\n\r\n' "$M$N")
	reject_body "9110 15.5.14 one chunk of 11 bytes over client_max_body_size 10" 413 < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n"'b\r\nhello world\r\n0\r\n\r\n')
	send "$P" < <(printf "POST $(tgt) HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"'5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n')
	is "$(seen "^DONE POST .*/sm/$M$N HTTP/1.1 body=10$")" 1 "$m: a chunked body of exactly client_max_body_size passes"
done

# --- RFC 9112 3.2.2: absolute-form with a Host that differs: the target's authority wins --
for m in r f; do
	[ $m = r ] && p=$port || p=$fport
	send "$p" < <(printf "GET http://127.0.0.1:$o_port/headers?sm=$m-host HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
	is "$(status_of "$OUT")" 200 "$m: 3.2.2 absolute-form with Host: evil.example is accepted"
	is "$(grep -i '^Host:' <<<"$OUT" | tr -d '\r' | tr '\n' '|')" "Host: 127.0.0.1:$o_port|" \
		"$m: 3.2.2 the origin sees one Host, the target's authority"
done

# --- responses framed two ways: 502, and their bytes are not the next response -----------
# The *-keep kinds leave the origin's connection open (a desynced origin that goes on), so
# a proxy that pooled it would read the leftover ("hello..." or "XY") as the next response.
# proxyd may close the client connection after its 502: a write to it must not kill us.
trap '' PIPE
for m in r f; do
	[ $m = r ] && p=$port || p=$fport
	[ $m = r ] && pfx="" || pfx="http://127.0.0.1:$o_port"
	for kind in cl-te cl-te-keep dup-cl dup-cl-keep; do
		exec 4<>"/dev/tcp/127.0.0.1/$p" || bail "cannot connect"
		printf "GET $pfx/bad/$kind HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\n\r\n" >&4
		r1=$(read_response 4)
		is "$(status_of "$r1")" 502 "$m: 9112 6.3 response /bad/$kind: 502"
		unlike "$r1" 'hello|X-Origin|XY' "$m: response /bad/$kind: none of the origin's bytes in the 502"
		# The next requests: on the same client connection while proxyd keeps it, else on a
		# new one. Five of them, so that whichever idle upstream connection the pool hands
		# out (keepalive 4), a desynced one that was kept would be used.
		clean=0 same=0
		for i in 1 2 3 4 5; do
			printf "GET $pfx/ HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\n\r\n" >&4 2>/dev/null
			if r2=$(read_response 4); then
				same=$((same + 1))
			else
				exec 4<&-
				exec 4<>"/dev/tcp/127.0.0.1/$p" || bail "cannot connect"
				printf "GET $pfx/ HTTP/1.1\r\nHost: 127.0.0.1:$o_port\r\n\r\n" >&4
				r2=$(read_response 4)
			fi
			if [ "$(status_of "$r2")" = 200 ] && [ "$(tail -n 1 <<<"$r2")" = "$o_uuid" ]; then
				clean=$((clean + 1))
			else
				diag "after /bad/$kind, request $i got: $(head -c 300 <<<"$r2" | tr '\r\n' '  ')"
			fi
		done
		exec 4<&-
		diag "$m: after /bad/$kind: $same of 5 requests on the same client connection"
		is "$clean" 5 "$m: after /bad/$kind the next 5 responses are the origin's own, 200, unmixed"
	done
done

kill -0 "$PROXYD_PID" 2>/dev/null
ok $? "proxyd is still running"
is "$(curl -s --max-time 5 --data-binary hello "http://127.0.0.1:$port/sink")" "5 532" \
	"a valid POST still passes afterwards"
plan "$TAP_N"
