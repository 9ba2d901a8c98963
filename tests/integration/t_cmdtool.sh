# Command tools: arguments reach argv literally -- no shell ever sees them;
# schema violations are refused before anything runs; a command past its
# timeout is killed (with what it printed in the error) and the worker
# lives on; a command that leaves a child running returns when it exits,
# with its output, and the child is killed; a worker killed mid-tool takes
# the tool's children with it (they are in a group of their own, out of
# reach of a kill of the worker's group).
. ./lib.sh

{ header; cat <<YAML
  echo:
    local_tools:
      - name: say
        description: "Print the text"
        inputSchema: {type: object, properties: {text: {type: string}}, required: [text], additionalProperties: false}
        command: ["/usr/bin/printf", "[%s]\\\\n", "{text}", "--", "x{text}y"]
    task_config: {tool: say, text: "hello"}
  slow:
    local_tools:
      - name: nap
        command: ["sh", "-c", "echo partial; exec sleep 600"]
        timeout: 300ms
    task_config: {tool: nap}
    max_retries: 0
  closed:
    local_tools:
      - name: quiet
        command: ["sh", "-c", "exec >/dev/null 2>&1; sleep 600"]
        timeout: 300ms
    task_config: {tool: quiet}
    max_retries: 0
  bg:
    local_tools:
      - name: spawn
        command: ["sh", "-c", "echo started; sleep 300 & echo done"]
        timeout: 60s
    task_config: {tool: spawn}
    max_retries: 0
  orphan:
    local_tools:
      - name: hang
        command: ["sh", "-c", "sleep 301 & sleep 302"]
        timeout: 60s
    task_config: {tool: hang}
    max_retries: 0
  capped:
    local_tools:
      - name: nap
        command: ["sleep", "10"]
    agent_config: {tool_call_timeout: 400ms}
    task_config: {tool: nap}
    max_retries: 0
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"
field echo available_tools | grep -q say || fail "command tool not listed"

result() { events_json "$1" | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][-1]"; }
finished() { events_json echo | jget "len([e for e in d if e['type'] in ('background_task_completed','background_task_error')])"; }
# agentctl run takes no kwargs: send the run request over the socket directly.
send_run() { # kwargs-json
	python3 - "$SOCK" "$1" <<'PY' || fail "could not send run"
import json, socket, struct, sys
def pack(v):
    if isinstance(v, bool): return b"\xc3" if v else b"\xc2"
    if isinstance(v, int): return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode(); return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, dict): return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
body = pack({"t": "request", "cmd": "run", "agent": "echo", "args": {"kwargs": json.loads(sys.argv[2])}})
s.sendall(struct.pack(">I", len(body)) + body); s.recv(4096)
PY
}
evil=("; touch $T/pwned1" "\$(touch $T/pwned2)" "\`touch $T/pwned3\`" $'line1\nline2' "--help" "'quoted' \"double\" \\\\ |&<>*?")
for i in "${!evil[@]}"; do
	n=$(finished)
	send_run "$(python3 -c 'import json,sys; print(json.dumps({"text": sys.argv[1]}))' "${evil[$i]}")"
	wait_until 5 sh -c "[ \$(AGENTD_SOCKET=$SOCK $B/agentctl --json events -n 500 echo | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"] in (\"background_task_completed\",\"background_task_error\")]))') -gt $n ]" || fail "run $i did not finish"
	out=$(result echo | jget "d['output']")
	want=$(printf '[%s]\n[--]\n[x%sy]\n' "${evil[$i]}" "${evil[$i]}")
	[ "$out" = "$want" ] || fail "argument $i not passed literally: got [$out] want [$want]"
done
for f in pwned1 pwned2 pwned3; do [ -e "$T/$f" ] && fail "a shell ran: $f exists"; done

[ "$(events_json echo | jget "len([e for e in d if e['type']=='background_task_error'])")" = 0 ] || fail "unexpected errors"

# Schema: a wrong type or an unknown argument is refused before running.
for kw in '{"text": 5}|must be of type string' '{"text": "a", "extra": "b"}|unknown argument'; do
	n=$(finished)
	send_run "${kw%%|*}"
	wait_until 5 sh -c "[ \$(AGENTD_SOCKET=$SOCK $B/agentctl --json events -n 500 echo | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"] in (\"background_task_completed\",\"background_task_error\")]))') -gt $n ]" || fail "schema run did not finish"
	events_json echo | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]" |
		grep -q "${kw#*|}" || fail "schema violation not refused: ${kw%%|*}"
done

# Timeout: killed, reported, the worker keeps its pid.
pid=$(field slow pid)
ctl run slow >/dev/null
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status slow | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"error_count\"])') = 1 ]" || fail "timeout not reported"
events_json slow | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]" | grep -q "timed out after [0-9]* ms; it printed: partial" || fail "timeout message"
[ "$(field slow pid)" = "$pid" ] || fail "the worker died with its tool"
# ours: a process of that command line running in this test's directory
ours() { pgrep -f "$1" | while read -r p; do case "$(readlink /proc/$p/cwd)" in "$T"/*) echo "$p";; esac; done; }
none_left() { [ -z "$(ours "$1")" ]; }
wait_until 10 none_left "sleep 600" || fail "timed-out command still running: $(ours "sleep 600")"

# A command that closed its output is still held to its timeout.
ctl run closed >/dev/null
closed_failed() { events_json closed | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error']" | grep -q "timed out"; }
wait_until 20 closed_failed || fail "a command that closed its output outlived its timeout"
wait_until 10 none_left "sleep 600" || fail "the quiet command still runs: $(ours "sleep 600")"

# A child left running: the call returns when the command exits, with its
# output, and the child is killed with the command's process group.
ctl run bg >/dev/null
bg_done() { [ "$(events_json bg | jget "len([e for e in d if e['type'] in ('background_task_completed','background_task_error')])")" -ge 1 ]; }
wait_until 20 bg_done || fail "bg run did not finish"
[ "$(result bg | jget "d['output']")" = "$(printf 'started\ndone')" ] || fail "bg output: $(result bg)"
wait_until 10 none_left "sleep 300" || fail "the command's background child survived: $(ours "sleep 300")"


# The worker SIGKILLed while its tool runs: agentd kills what is left of
# its session, the tool's own group included.
ctl run orphan >/dev/null
wait_until 10 sh -c "[ -n \"\$(pgrep -f 'sleep 301')\" ]" || fail "the orphan tool did not start"
kill -9 "$(field orphan pid)"
wait_until 10 none_left "sleep 301" || fail "the tool's background child outlived its worker: $(ours "sleep 301")"
wait_until 10 none_left "sleep 302" || fail "the tool outlived its worker: $(ours "sleep 302")"

# agent_config.tool_call_timeout bounds a tool that has no timeout of its own.
ctl run capped >/dev/null
wait_until 20 sh -c "[ \$($B/agentctl -s $SOCK --json status capped | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"error_count\"])') = 1 ]" || fail "tool_call_timeout not applied"
events_json capped | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]" | grep -q "timed out after 400 ms (agent_config.tool_call_timeout)" || fail "tool_call_timeout message"
state_is capped idle || fail "worker did not survive its tool's timeout"
exit 0
