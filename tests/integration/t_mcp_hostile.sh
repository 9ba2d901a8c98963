# MCP servers that misbehave on purpose (tests/mcp/oddserver.py): late
# answers and wrong ids, a NUL in a tool's text, a server that stops
# reading and keeps asking, one that dies leaving a child on its pipes.
# Through the probe, then under agentd with idle workers: no worker dies,
# and each server is restarted with the reason.
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
note "probe: a deaf and a dead-but-held server each fail the call with the reason"

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
{ header; srv a_deaf deaf; srv a_orphan orphan; } | write_config
start_agentd
wait_until 20 all_idle || fail "workers not idle"
declare -A pid
for a in a_deaf a_orphan; do pid[$a]=$(field $a pid); done
srv_error() { ctl --json status "$1" | jget "d['mcp_servers']['$2']['error'] or ''"; }
error_has() { srv_error "$1" "$2" | grep -qF -- "$3"; }
wait_until 60 error_has a_deaf deaf 'it does not read its stdin' || fail "deaf: $(srv_error a_deaf deaf)"
wait_until 60 error_has a_orphan orphan 'its process ended (the server exited with status 3)' || fail "orphan: $(srv_error a_orphan orphan)"
for a in a_deaf a_orphan; do
	[ "$(field $a pid)" = "${pid[$a]}" ] || fail "$a's worker was restarted (its server took it down)"
	state_is $a idle || fail "$a is $(field $a state), not idle"
done
grep -E "signal 11|worker_fatal" "$T/agentd.log" && fail "a worker crashed"
note "deaf and dead-but-held servers are restarted with the reason; the workers live on"

stop_agentd || fail "agentd did not stop cleanly"
exit 0
