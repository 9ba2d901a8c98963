# MCP over stdio with the real npm servers (server-everything, -filesystem,
# -memory) and, for what they never do, tests/mcp/oddserver.py: progress
# extending a call, a timeout that cancels and drops the late answer,
# requests from the server answered, JSON-RPC and isError failures,
# pagination, bad tool names and schemas, protocol mismatch, a server that
# never answers, exits at once, prints garbage, or is killed mid-call.
# Then end to end: a scripted model calls an MCP tool through agentd, the
# tool's text is the completed event's result, status shows the servers,
# and a dead server is restarted with backoff while the agent lives on.
. ./lib.sh

use_mcp_servers
EV="node $M/server-everything/dist/index.js stdio"
ODD="python3 $PWD/../mcp/oddserver.py"
probe() { "$B/agentd-worker" --mcp-probe "$@" 2>>"$T/probe.err"; }
line() { sed -n "${1}p"; }
has() { grep -qF -- "$2" <<<"$1" || fail "$3: expected \"$2\" in: $1"; }

# The reference server: echo, add, structured output, image, resource links.
out=$(probe -c echo '{"message":"hello mcp"}' -c get-sum '{"a":40,"b":2}' \
	-c get-structured-content '{"location":"Chicago"}' -c get-tiny-image '{}' \
	-c get-resource-links '{"count":1}' -c no-such-tool '{}' -- $EV)
has "$(line 1 <<<"$out")" '"protocol_version":"2025-11-25"' "initialize"
has "$(line 1 <<<"$out")" '"trigger-long-running-operation"' "tools/list"
has "$(line 2 <<<"$out")" '"text":"Echo: hello mcp"' "echo"
has "$(line 3 <<<"$out")" 'The sum of 40 and 2 is 42' "get-sum"
has "$(line 4 <<<"$out")" '"structuredContent":{' "structuredContent"
has "$(line 5 <<<"$out")" '[image image/png' "image content"
has "$(line 6 <<<"$out")" '[resource_link ' "resource_link content"
has "$(line 7 <<<"$out")" '"ok":false,"error":"MCP error -32602: Tool no-such-tool not found"' "unknown tool as isError"
note "server-everything: echo, add, structured, image, resource_link, unknown tool"

# Progress keeps a call alive past its timeout; without progress it times
# out, the server is told, the late answer is dropped, and the server
# (which still answers a ping) stays.
# A progress every 0.2 s against a 2 s deadline: ten times what it needs,
# so a loaded machine does not make it time out.
out=$(probe -t 2000 -c trigger-long-running-operation '{"duration":4,"steps":1}' \
	-c trigger-long-running-operation '{"duration":4,"steps":20}' -c echo '{"message":"still here"}' -- $EV)
has "$(line 2 <<<"$out")" 'no response to tools/call in 2000 ms' "timeout"
has "$(line 3 <<<"$out")" 'Duration: 4 seconds, Steps: 20' "progress extends the deadline (and the late answer is not taken)"
has "$(line 4 <<<"$out")" 'Echo: still here' "server kept after a timeout"
note "progress extends a call; a timeout cancels; the late response is dropped"

# What the npm servers never do: pagination, requests to the client, a
# JSON-RPC error for an unknown tool, a banner on stdout, bad tool entries.
export ODD_LOG=$T/odd.log
out=$(probe -c alpha '{}' -c nosuch '{}' -- $ODD noisy)
has "$(line 1 <<<"$out")" '"tools":["alpha","beta_v2","gamma"]' "nextCursor pages, dots renamed"
has "$(line 2 <<<"$out")" '\"ping\": {}, \"sampling_error\": -32601' "ping answered, sampling refused"
has "$(line 3 <<<"$out")" 'MCP error -32602: Unknown tool: nosuch' "JSON-RPC error"
grep -q 'not a JSON-RPC message, skipped: odd server 1.0' "$T/probe.err" || fail "banner not logged"
grep -q '"method": "notifications/initialized"' "$ODD_LOG" || fail "no notifications/initialized"
out=$(probe -c good '{}' -- $ODD badtools)
has "$(line 1 <<<"$out")" '"tools":["good"]' "invalid tools skipped"
grep -q 'inputSchema of 70034 bytes is over 65536' "$T/probe.err" || fail "huge schema not reported"
out=$(probe -c first '{}' -c second '{}' -- $ODD changing)
has "$(sed -n 3p <<<"$out")" '{"tools_changed":["first","second"]}' "list_changed re-lists"
has "$(sed -n 4p <<<"$out")" '\"tool\": \"second\"' "the new tool is called"
out=$(probe -- $ODD version) && fail "an unsupported protocol version was accepted"
has "$out" 'the server speaks protocol version 1999-01-01' "version mismatch"
note "oddserver: pages, server requests, JSON-RPC errors, banner, bad tools, version"

# Servers that fail: never answers initialize, exits at once, garbage, killed mid-call.
out=$(probe -t 1000 -- sleep 60) && fail "a silent server connected"
has "$out" 'initialize: no response to initialize in 1000 ms' "silent server"
out=$(probe -- sh -c 'echo "config file missing" >&2; exit 3') && fail "a dead server connected"
has "$out" 'its last stderr line: config file missing (the server exited with status 3)' "exits at once"
out=$(probe -- sh -c 'while :; do echo garbage; done') && fail "a garbage server connected"
has "$out" 'it keeps writing lines that are not JSON-RPC' "garbage"
"$B/agentd-worker" --mcp-probe -t 30000 -c trigger-long-running-operation '{"duration":20,"steps":1}' \
	-- $EV > "$T/killed.out" 2>>"$T/probe.err" &
P=$!
wait_until 10 grep -q connected "$T/killed.out" || fail "probe did not connect"
sleep 0.3	# the call is under way
pkill -KILL -P $P node || fail "no server to kill"
wait_until 5 grep -q '"ok":false' "$T/killed.out" || fail "the client did not notice its server die"
wait $P && fail "probe succeeded with a killed server"
has "$(cat "$T/killed.out")" 'the server was killed by signal 9' "killed mid-call"
note "silent, exiting, garbage-printing and killed servers: clear errors, no hang"

# server-filesystem on a temp dir; server-memory with its file in the temp dir.
mkdir -p "$T/fs" && echo "disk ok" > "$T/fs/report.txt"
out=$(probe -c list_directory "{\"path\":\"$T/fs\"}" -c read_text_file "{\"path\":\"$T/fs/report.txt\"}" \
	-c read_text_file '{"path":"/etc/passwd"}' -- node "$M/server-filesystem/dist/index.js" "$T/fs")
has "$(line 2 <<<"$out")" '[FILE] report.txt' "list_directory"
has "$(line 3 <<<"$out")" '"text":"disk ok\n"' "read_text_file"
has "$(line 4 <<<"$out")" 'Access denied - path outside allowed directories' "filesystem isError"
out=$(MEMORY_FILE_PATH=$T/memory.jsonl probe \
	-c create_entities '{"entities":[{"name":"web01","entityType":"host","observations":["disk 91%"]}]}' \
	-c search_nodes '{"query":"web01"}' -- node "$M/server-memory/dist/index.js")
has "$(line 3 <<<"$out")" 'disk 91%' "server-memory search"
grep -q '"name":"web01"' "$T/memory.jsonl" || fail "server-memory did not write its file"
note "server-filesystem and server-memory"

# End to end through agentd.
cat > "$T/script.json" <<'JSON'
{"mcp": [{"body": {"openai_calls": [["echo", {"message": "from the agent"}]]}}, {"body": {"openai_echo_tool": true}}],
 "down": [{"body": {"openai_calls": [["echo", {"message": "x"}]]}}, {"body": {"openai_echo_tool": true}}]}
JSON
start_fakemodel
{ header; cat <<YAML
  mcpagent:
    model_config: {provider: openai, model: m, base_url: "http://127.0.0.1:$PORT/mcp/v1"}
    task_config: {query: "Say hello through the echo tool"}
    local_tools: [system_info]
    mcp_tools:
      - {name: everything, transport_type: stdio, command: node, args: ["$M/server-everything/dist/index.js", stdio], timeout: 10}
      - {name: broken, command: sh, args: ["-c", "echo broken server >&2; exit 3"]}
  downagent:
    model_config: {provider: openai, model: m, base_url: "http://127.0.0.1:$PORT/down/v1"}
    task_config: {query: "Use a tool whose server is gone"}
    local_tools: []
    mcp_tools:
      - {name: gone, command: sh, args: ["-c", "[ -e $T/dead ] && exit 7; exec node $M/server-everything/dist/index.js stdio"]}
YAML
} | write_config
export OPENAI_API_KEY=sk-test-mcp
start_agentd
wait_until 10 all_idle || fail "workers not idle"
connected() { ctl --json status "$1" | jget "d['mcp_servers']['$2']['state']" | grep -qx connected; }
wait_until 20 connected mcpagent everything || fail "everything never connected"
st=$(ctl --json status mcpagent)
has "$(jget "d['mcp_servers']['everything']['protocol_version']" <<<"$st")" "2025-11-25" "status protocol_version"
has "$(jget "d['available_tools']" <<<"$st")" '"system_info", "echo"' "available_tools merges local and MCP"
wait_until 10 sh -c "\"$B/agentctl\" -s \"$SOCK\" --json status mcpagent | grep -q 'broken server (the server exited with status 3)'" \
	|| fail "the broken server's error is not in status"
ctl --json status mcpagent | jget "d['mcp_servers']['broken']['state'] in ('restarting', 'failed', 'connecting')" | grep -qx true \
	|| fail "the broken server is not shown restarting"

ctl run mcpagent >/dev/null || fail "run"
done_run() { events_json "$1" | jget "any(e['type'] in ('background_task_completed','background_task_error') for e in d)" | grep -qx true; }
wait_until 20 done_run mcpagent || fail "the MCP run did not finish"
res=$(events_json mcpagent | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][0]")
has "$res" 'Echo: from the agent' "the MCP tool's result reaches the completed event"
has "$(events_json mcpagent | jget "[e['payload']['output'] for e in d if e['type']=='tool_call_result']")" 'Echo: from the agent' "tool_call_result"
note "agentctl run -> model -> MCP echo -> completed event"

# Kill the server under a live agent: the next call restarts it.
spid=$(pgrep -f "server-everything/dist/index.js stdio" | while read -r p; do
	case "$(readlink /proc/$p/cwd)" in "$T"/state/*mcpagent*) echo $p ;; esac; done | head -1)
[ -n "$spid" ] || fail "cannot find mcpagent's server"
kill -KILL "$spid"
wait_until 10 sh -c "! kill -0 $spid 2>/dev/null"
wait_until 20 connected mcpagent everything || fail "the killed server was not restarted"
[ "$(field mcpagent state)" = idle ] || fail "the worker did not survive its server"
note "a killed server is restarted; the worker lives on"

# downagent: its server dies and cannot come back; the model is told why.
wait_until 20 connected downagent gone || fail "gone never connected"
touch "$T/dead"
pkill -KILL -P "$(pgrep -P "$(field downagent pid)" sh)" node 2>/dev/null ||
	pkill -KILL -P "$(field downagent pid)" node
wait_until 10 sh -c "\"$B/agentctl\" -s \"$SOCK\" --json status downagent | grep -q 'status 7'" \
	|| fail "the failed restart is not in status"
ctl run downagent >/dev/null
wait_until 20 done_run downagent || fail "downagent's run did not finish"
res=$(events_json downagent | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][0]")
has "$res" 'MCP server gone is not connected' "a down server's tool answers with the reason"
has "$res" 'exited with status 7' "the reason"
[ "$(field downagent state)" = idle ] || fail "downagent's worker did not survive"
note "a server that stays down: its tools answer the model with the reason"
stop_agentd || fail "agentd did not stop cleanly"
for p in $(pgrep -f "server-everything/dist/index.js"); do
	case "$(readlink /proc/$p/cwd 2>/dev/null)" in "$T"/*) fail "server $p outlived agentd" ;; esac
done
! grep -q "sk-test-mcp" "$T/agentd.log" || fail "the API key reached the log"
note "shutdown stops every MCP server"
