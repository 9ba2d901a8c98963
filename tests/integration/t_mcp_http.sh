# MCP over Streamable HTTP with the real server-everything in its
# streamableHttp and legacy sse modes, which listen on every interface: so this test runs in
# a network namespace of its own where only loopback exists.  Calls with
# progress over SSE, the config's headers sent and never logged, a session
# lost to a server restart (initialize again, then the call), DELETE at
# shutdown; then the official conformance suite's client scenarios.
if [ -z "${AGENTD_IN_NETNS:-}" ]; then
	unshare -n true 2>/dev/null && exec unshare -n env AGENTD_IN_NETNS=1 bash "$0" "$@"
	unshare -rn true 2>/dev/null && exec unshare -rn env AGENTD_IN_NETNS=1 bash "$0" "$@"
	# No namespaces here: the servers listen on every interface for the
	# few seconds of the test; every connection still goes to 127.0.0.1,
	# and every check still runs (start_servers makes sure the ports are
	# held by the servers this test started, not by another test's).
	echo "  - no network namespace available: running on the host's loopback"
elif ! ip link set lo up; then
	echo "FAIL: cannot bring up loopback in the namespace" >&2
	exit 1
fi
. ./lib.sh

use_mcp_servers
has() { grep -qF -- "$2" <<<"$1" || fail "$3: expected \"$2\" in: $1"; }
HPORT=$(free_port) SPORT=$(free_port)
URL=http://127.0.0.1:$HPORT/mcp SSE_URL=http://127.0.0.1:$SPORT/sse
SRV= SSRV=
start_servers() { # streamableHttp on HPORT, the legacy sse mode on SPORT
	PORT=$HPORT node "$M/server-everything/dist/index.js" streamableHttp >> "$T/server.log" 2>&1 &
	SRV=$!
	PORT=$SPORT node "$M/server-everything/dist/index.js" sse >> "$T/sse.log" 2>&1 &
	SSRV=$!
	wait_until 10 listening $HPORT $SRV || fail "server-everything did not listen on $HPORT"
	wait_until 10 listening $SPORT $SSRV || fail "server-everything (sse) did not listen on $SPORT"
}
listening() { ss -Hltnp "sport = :$1" | grep -q "pid=$2,"; }	# PORT PID
at_exit 'kill $SRV $SSRV'
start_servers

out=$("$B/agentd-worker" --mcp-probe -t 1000 -c echo '{"message":"over http"}' \
	-c trigger-long-running-operation '{"duration":2,"steps":5}' -c get-sum '{"a":1,"b":2}' "$URL")
has "$(sed -n 1p <<<"$out")" '"protocol_version":"2025-11-25"' "initialize over HTTP"
has "$(sed -n 2p <<<"$out")" 'Echo: over http' "echo over HTTP"
has "$(sed -n 3p <<<"$out")" 'Steps: 5' "progress on the SSE stream extends the call"
has "$(sed -n 4p <<<"$out")" 'The sum of 1 and 2 is 3' "get-sum over HTTP"
wait_until 5 grep -q "session termination request" "$T/server.log" || fail "no DELETE at the end"
note "probe over HTTP: JSON and SSE answers, progress, DELETE"

out=$("$B/agentd-worker" --mcp-probe -s -t 1000 -c echo '{"message":"legacy"}' \
	-c trigger-long-running-operation '{"duration":2,"steps":5}' "$SSE_URL")
has "$(sed -n 1p <<<"$out")" '"connected":true' "legacy sse initialize"
has "$(sed -n 2p <<<"$out")" 'Echo: legacy' "echo over legacy sse"
has "$(sed -n 3p <<<"$out")" 'Steps: 5' "progress over legacy sse"
out=$("$B/agentd-worker" --mcp-probe -s -t 1000 http://127.0.0.1:$HPORT/nothing-here) && fail "a 404 stream connected"
has "$out" '"connected":false' "legacy sse on a wrong URL"
note "probe over the legacy HTTP+SSE transport"

cat > "$T/script.json" <<'JSON'
{"o": [{"body": {"openai_calls": [["echo", {"message": "old first"}]]}}, {"body": {"openai_echo_tool": true}},
       {"body": {"openai_calls": [["echo", {"message": "old second"}]]}}, {"body": {"openai_echo_tool": true}}],
 "h": [{"body": {"openai_calls": [["echo", {"message": "first"}]]}}, {"body": {"openai_echo_tool": true}},
       {"body": {"openai_calls": [["echo", {"message": "second"}]]}}, {"body": {"openai_echo_tool": true}}]}
JSON
start_fakemodel
{ header; cat <<YAML
  web:
    model_config: {provider: openai, model: m, base_url: "http://127.0.0.1:$PORT/h/v1"}
    task_config: {query: "echo something"}
    local_tools: []
    mcp_tools:
      - name: ev
        transport_type: streamable_http
        url: "$URL"
        headers: {Authorization: "Bearer tok-SECRET-789"}
  old:
    model_config: {provider: openai, model: m, base_url: "http://127.0.0.1:$PORT/o/v1"}
    task_config: {query: "echo something"}
    local_tools: []
    mcp_tools:
      - {name: legacy, transport_type: sse, url: "$SSE_URL", timeout: 10s}
YAML
} | write_config
export OPENAI_API_KEY=sk-test-http
start_agentd
connected() { ctl --json status $1 | jget "d['mcp_servers']['$2']['state']" | grep -qx connected; }
wait_until 20 connected web ev || fail "the HTTP server never connected"
wait_until 20 connected old legacy || fail "the legacy SSE server never connected"
done_n() { [ "$(events_json $1 | jget "len([e for e in d if e['type']=='background_task_completed'])")" -ge "$2" ]; }
ctl run web >/dev/null; ctl run old >/dev/null
wait_until 20 done_n web 1 || fail "first run"
wait_until 20 done_n old 1 || fail "first legacy run"
kill "$SRV" "$SSRV"; wait "$SRV" "$SSRV" 2>/dev/null
start_servers	# new processes: the workers' sessions mean nothing to them
ctl run web >/dev/null; ctl run old >/dev/null
wait_until 30 done_n web 2 || fail "second run after the server restart"
wait_until 30 done_n old 2 || fail "second legacy run after the server restart"
res=$(events_json web | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed']")
has "$res" 'Echo: first' "first run's result"
has "$res" 'Echo: second' "the call after a lost session"
res=$(events_json old | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed']")
has "$res" 'Echo: old first' "first legacy run's result"
has "$res" 'Echo: old second' "the legacy call after a lost stream"
grep -q "ev: its HTTP session ended" "$T/agentd.log" || fail "the lost session was not noticed"
grep -q "legacy: its HTTP session ended" "$T/agentd.log" || fail "the lost legacy stream was not noticed"
! grep -q "tok-SECRET-789" "$T/agentd.log" || fail "a config header reached the log"
! events_json | grep -q "tok-SECRET-789" || fail "a config header reached the events"
stop_agentd || fail "agentd did not stop cleanly"
note "agents over HTTP and legacy SSE: sessions lost to a restart, initialized again, headers kept secret"

# The official client conformance scenarios, with our probe as the client.
cd "$T"
for sc in initialize "tools_call"; do
	args=""
	[ $sc = tools_call ] && args="-c add_numbers '{\"a\":2,\"b\":3}'"
	out=$(node "$NPM/node_modules/.bin/conformance" client --scenario $sc \
		--command "$B/agentd-worker --mcp-probe $args" 2>&1)
	grep -q "OVERALL: PASSED" <<<"$out" || fail "conformance $sc: $out"
	note "conformance client --scenario $sc: $(grep -o 'Passed: [0-9/]*' <<<"$out")"
done
