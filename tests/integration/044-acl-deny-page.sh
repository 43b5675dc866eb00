#!/usr/bin/env bash
# Deny responses: the built-in page names the rule id and the request id (the same id as
# the `*N` of the error log's line); deny_page FILE substitutes $rule, $client, $url
# (query included) and $id, HTML-escaped, so a query with < > " & ' sent raw by curl
# cannot inject markup; a page larger than 4 KiB (the limit is 64k) arrives whole.
. "$TESTLIB"
plan 16

start_origin o1
rp=$(free_port_static)
rp2=$(free_port_static)
rp3=$(free_port_static)
cat >"$T/page.html" <<'PAGE'
<!doctype html><title>Blocked</title>
<p class=r>rule=[$rule]</p><p class=c>client=[$client]</p>
<p class=u>url=[$url]</p><p class=i>id=[$id]</p><p>cost: $5 $unknown</p>
PAGE
# a large page: 20 KiB of filler, then the variables at the very end
{
	echo "<!doctype html><title>Big</title>"
	for i in $(seq 1 400); do printf '<p>filler line %04d ..............................</p>\n' "$i"; done
	echo "<p>END rule=[\$rule] id=[\$id]</p>"
} >"$T/big.html"
cat >"$T/proxyd.conf" <<CONF
workers 1;
error_log stderr info;
upstream up { server 127.0.0.1:$o1_port; }
server { listen 127.0.0.1:$rp; proxy_pass up;
	deny id=no-admin path ~ ^/admin;
}
server { listen 127.0.0.1:$rp2; proxy_pass up;
	deny_page $T/page.html;
	deny 451 id=<legal&co> path ~ ^/blocked;
}
server { listen 127.0.0.1:$rp3; proxy_pass up;
	deny_page $T/big.html;
	deny id=big all;
}
CONF
start_proxyd "$T/proxyd.conf" "$rp"
for p in $rp2 $rp3; do wait_port 127.0.0.1 "$p" || bail "proxyd does not listen on $p"; done

# built-in page
out=$(curl -s -D "$T/h1" --max-time 5 "http://127.0.0.1:$rp/admin/x?a=1")
like "$(head -1 "$T/h1")" "^HTTP/1.1 403 " "built-in page: status 403"
like "$(grep -i '^content-type:' "$T/h1")" "text/html" "built-in page: text/html"
like "$out" "denied by policy \\(no-admin\\)" "built-in page: names the rule id"
like "$out" "The request to http://127.0.0.1:$rp/admin/x\\?a=1 was denied" "built-in page: names the URL with its query"
reqid=$(printf '%s' "$out" | sed -n 's/.*Request ID: \([0-9][0-9]*\).*/\1/p')
like "$reqid" "^[0-9]+$" "built-in page: has a request id ($reqid)"
sleep 0.2
like "$(grep "^.*\\[notice\\] \\*$reqid client " "$T/proxyd.log")" "denied by rule no-admin .*/admin/x\\?a=1" \
	"the error log's line for that request id names the same rule and URL"
out2=$(curl -s --max-time 5 "http://127.0.0.1:$rp/admin/x?a=1")
reqid2=$(printf '%s' "$out2" | sed -n 's/.*Request ID: \([0-9][0-9]*\).*/\1/p')
[ -n "$reqid2" ] && [ "$reqid2" != "$reqid" ]
ok $? "each denial has its own request id ($reqid, $reqid2)"

# deny_page with substitution and escaping; curl sends < > " ' raw in the query
url="http://127.0.0.1:$rp2/blocked/p?q=<script>alert(\"x\")</script>&o='1'"
out=$(curl -s -D "$T/h2" --max-time 5 --interface 127.0.0.3 "$url")
diag "the deny page as received: $(printf '%s' "$out" | tr '\n' ' ')"
like "$(head -1 "$T/h2")" "^HTTP/1.1 451 " "deny_page: the line's status 451"
like "$out" "^<!doctype html><title>Blocked</title>" "deny_page: the file is the body"
like "$out" "rule=\\[&lt;legal&amp;co&gt;\\]" "deny_page: \$rule substituted, HTML-escaped"
like "$out" "client=\\[127\\.0\\.0\\.3\\]" "deny_page: \$client is the client address"
is "$(printf '%s' "$out" | sed -n 's/.*url=\[\([^]]*\)\].*/\1/p')" \
	"http://127.0.0.1:$rp2/blocked/p?q=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;o=&#39;1&#39;" \
	"deny_page: \$url with the query, every markup character escaped"
unlike "$out" "<script>" "deny_page: no markup from the request in the page"
like "$out" "id=\\[[0-9]+\\]" "deny_page: \$id is the request id"
like "$out" 'cost: \$5 \$unknown' "deny_page: other \$ words are left alone"

# a page over 4 KiB
size=$(wc -c <"$T/big.html")
out=$(curl -s --max-time 5 "http://127.0.0.1:$rp3/")
like "$out" "END rule=\\[big\\] id=\\[[0-9]+\\]" \
	"deny_page of $size bytes arrives whole (got $(printf '%s' "$out" | wc -c) bytes)"
