# MCP servers that misbehave on purpose (tests/mcp/oddserver.py): late
# answers and wrong ids, a NUL in a tool's text, a server that stops
# reading and keeps asking, one that floods its log, one that repeats
# list_changed, one that dies leaving a child on its pipes, and a
# Streamable HTTP server whose event never ends.  Through the probe, then
# under agentd with idle workers: no worker dies, every server past a bound
# is restarted with the reason, and the agent's log and events stay small.
. ./lib.sh

ODD="python3 $PWD/../mcp/oddserver.py"
export ODD_LOG=$T/odd.log
probe() { "$B/agentd-worker" --mcp-probe "$@" 2>>"$T/probe.err"; }
line() { sed -n "${1}p"; }
has() { grep -qF -- "$2" <<<"$1" || fail "$3: expected \"$2\" in: $1"; }

# Ids: a late answer (the call timed out) and a wrong id are not taken for
# the answer the client waits for; a NUL does not end a tool's text.
out=$(probe -t 1000 -c slow '{}' -c quick '{}' -c quick '{}' -c nul '{}' -- $ODD late)
has "$(line 2 <<<"$out")" 'no response to tools/call in 1000 ms' "slow times out"
[ "$(line 3 <<<"$out")" = '{"tool":"quick","ok":true,"output":{"text":"quick"}}' ] ||
	fail "the call after a late answer got another answer: $(line 3 <<<"$out")"
[ "$(line 4 <<<"$out")" = '{"tool":"quick","ok":true,"output":{"text":"quick"}}' ] ||
	fail "a response with a wrong id was taken: $(line 4 <<<"$out")"
has "$(line 5 <<<"$out")" '"text":"before\u0000after"' "a NUL ended the tool's text"
note "late answers and wrong ids are dropped; a NUL ends nothing"

# A server that stops reading and keeps asking: bounded, then restarted.
out=$(probe -t 20000 -c alpha '{}' -- $ODD deaf)
has "$(line 2 <<<"$out")" 'it does not read its stdin' "deaf server"
# A server that dies and leaves a child holding its pipes: noticed at once.
out=$(probe -t 20000 -c alpha '{}' -- $ODD orphan)
has "$(line 2 <<<"$out")" 'its process ended (the server exited with status 3)' "a dead server with its pipes held"
out=$(probe -t 20000 -c alpha '{}' -- $ODD chatty)
has "$(line 2 <<<"$out")" 'it sent over 2000 messages to log in a second' "log flood"
note "probe: a deaf, a dead-but-held and a chatty server each fail the call with the reason"

# Streamable HTTP: an event of data: lines that never ends is cut off.
HP=$(free_port)
$ODD http-sseflood "$HP" > "$T/http.out" 2>&1 &
HSRV=$!
at_exit 'kill $HSRV'
wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $HP))" || fail "the HTTP server did not listen"
out=$(probe -t 20000 -c alpha '{}' "http://127.0.0.1:$HP/mcp")
has "$(line 2 <<<"$out")" 'an event on its stream is over 8388608 bytes' "endless SSE event"
note "an endless event on an HTTP stream is cut at one message's bound"

# Under agentd, idle workers.
srv() { # agent server-mode
	cat <<YAML
  $1:
    task_config: {tool: system_info}
    local_tools: [system_info]
    mcp_tools:
      - {name: $2, command: python3, args: ["$PWD/../mcp/oddserver.py", $2], env: {ODD_LOG: "$T/$2.log"}}
YAML
}
{ header; srv a_deaf deaf; srv a_chatty chatty; srv a_relist relist; srv a_orphan orphan; } | write_config
start_agentd
wait_until 20 all_idle || fail "workers not idle"
declare -A pid
for a in a_deaf a_chatty a_relist a_orphan; do pid[$a]=$(field $a pid); done
srv_error() { ctl --json status "$1" | jget "d['mcp_servers']['$2']['error'] or ''"; }
error_has() { srv_error "$1" "$2" | grep -qF -- "$3"; }
wait_until 60 error_has a_deaf deaf 'it does not read its stdin' || fail "deaf: $(srv_error a_deaf deaf)"
wait_until 60 error_has a_chatty chatty 'it sent over 2000 messages to log in a second' || fail "chatty: $(srv_error a_chatty chatty)"
wait_until 60 error_has a_orphan orphan 'its process ended (the server exited with status 3)' || fail "orphan: $(srv_error a_orphan orphan)"
wait_until 60 grep -q odd_sent "$T/relist.log" || fail "the relist server did not finish"
for a in a_deaf a_chatty a_relist a_orphan; do
	[ "$(field $a pid)" = "${pid[$a]}" ] || fail "$a's worker was restarted (its server took it down)"
	state_is $a idle || fail "$a is $(field $a state), not idle"
done
grep -E "signal 11|worker_fatal" "$T/agentd.log" && fail "a worker crashed"
note "deaf, chatty and dead-but-held servers are restarted with the reason; the workers live on"

# Bounded: the chatty server's lines in the log, the relist server's
# tools/list calls and status events.
chatter=$(grep -c 'chatter' "$T/agentd.log")
[ "$chatter" -le 200 ] || fail "$chatter log lines from a flooding server"
sent=$(grep -o '"odd_sent": [0-9]*' "$T/relist.log" | grep -o '[0-9]*$')
lists=$(grep -c '"method": "tools/list"' "$T/relist.log")
[ "$lists" -le 30 ] || fail "$sent list_changed made $lists tools/list calls"
st=$(count_events a_relist mcp_server_status)
[ "$st" = 2 ] || fail "$sent identical list_changed made $st mcp_server_status events (want connecting, connected)"
note "$chatter of the log flood's lines written; $sent list_changed: $lists tools/list, $st status events"
stop_agentd || fail "agentd did not stop cleanly"
exit 0
