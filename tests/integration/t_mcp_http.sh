# MCP over Streamable HTTP with the real server-everything in its
# streamableHttp mode, which listens on every interface: so this test runs in
# a network namespace of its own where only loopback exists.  Calls with
# progress over SSE, the config's headers sent and never logged, a session
# lost to a server restart (initialize again, then the call), DELETE at
# shutdown; then the official conformance suite's client scenarios.
if [ -z "${AGENTD_IN_NETNS:-}" ]; then
	unshare -n true 2>/dev/null && exec unshare -n env AGENTD_IN_NETNS=1 bash "$0" "$@"
	exec unshare -rn env AGENTD_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up || { echo "FAIL: cannot bring up loopback in the namespace" >&2; exit 1; }
. ./lib.sh

NPM=${AGENTD_NPM_CACHE:-$HOME/.cache/agentd/npm}
M=$NPM/node_modules/@modelcontextprotocol
[ -f "$M/server-everything/dist/index.js" ] || fail "the MCP test servers are missing: run scripts/bootstrap"
has() { grep -qF -- "$2" <<<"$1" || fail "$3: expected \"$2\" in: $1"; }
HPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$HPORT/mcp
SRV=
start_server() {
	PORT=$HPORT node "$M/server-everything/dist/index.js" streamableHttp >> "$T/server.log" 2>&1 &
	SRV=$!
	wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $HPORT))" \
		|| fail "server-everything did not listen"
}
at_exit 'kill $SRV $FAKE'
FAKE=
start_server

out=$("$B/agentd-worker" --mcp-probe -t 1000 -c echo '{"message":"over http"}' \
	-c trigger-long-running-operation '{"duration":2,"steps":5}' -c get-sum '{"a":1,"b":2}' "$URL")
has "$(sed -n 1p <<<"$out")" '"protocol_version":"2025-11-25"' "initialize over HTTP"
has "$(sed -n 2p <<<"$out")" 'Echo: over http' "echo over HTTP"
has "$(sed -n 3p <<<"$out")" 'Steps: 5' "progress on the SSE stream extends the call"
has "$(sed -n 4p <<<"$out")" 'The sum of 1 and 2 is 3' "get-sum over HTTP"
wait_until 5 grep -q "session termination request" "$T/server.log" || fail "no DELETE at the end"
note "probe over HTTP: JSON and SSE answers, progress, DELETE"

cat > "$T/script.json" <<'JSON'
{"h": [{"body": {"openai_calls": [["echo", {"message": "first"}]]}}, {"body": {"openai_echo_tool": true}},
       {"body": {"openai_calls": [["echo", {"message": "second"}]]}}, {"body": {"openai_echo_tool": true}}]}
JSON
python3 ../fakemodel.py --script "$T/script.json" --log "$T/requests.log" > "$T/fake.out" 2>&1 &
FAKE=$!
wait_until 5 grep -q PORT "$T/fake.out" || fail "fake model did not start"
PORT=$(awk '/PORT/ {print $2}' "$T/fake.out")
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
YAML
} | write_config
export OPENAI_API_KEY=sk-test-http
start_agentd
connected() { ctl --json status web | jget "d['mcp_servers']['ev']['state']" | grep -qx connected; }
wait_until 20 connected || fail "the HTTP server never connected"
done_n() { [ "$(events_json web | jget "len([e for e in d if e['type']=='background_task_completed'])")" -ge "$1" ]; }
ctl run web >/dev/null
wait_until 20 done_n 1 || fail "first run"
kill "$SRV"; wait "$SRV" 2>/dev/null
start_server	# a new process: the worker's session id means nothing to it
ctl run web >/dev/null
wait_until 30 done_n 2 || fail "second run after the server restart"
res=$(events_json web | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed']")
has "$res" 'Echo: first' "first run's result"
has "$res" 'Echo: second' "the call after a lost session"
grep -q "its HTTP session ended" "$T/agentd.log" || fail "the lost session was not noticed"
! grep -q "tok-SECRET-789" "$T/agentd.log" || fail "a config header reached the log"
! events_json | grep -q "tok-SECRET-789" || fail "a config header reached the events"
stop_agentd || fail "agentd did not stop cleanly"
note "agent over HTTP: session lost to a restart, initialized again, headers kept secret"

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
