# The same bounds at the worker's pipe, both ways.  A worker that sends a
# value over them (an event payload or a result nested past 24 levels,
# memory content over 256 KiB, a result over 1 MiB) is at fault, as for a
# bad frame: killed and restarted with the reason.  The worker itself
# never sends one: a result over them becomes an error result saying so,
# an event's oversize field goes as cut text -- the worker lives on.
. ./lib.sh

{ header; for a in raw_event raw_memory raw_result deep_result big_result; do cat <<YAML
  $a:
    max_retries: 0
    restart: {policy: always, stable_after: 0s}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
done; } | write_config
sed -i '/^  raw_event:/a\    task_config: {tool: test_value, send: event, depth: 25}' "$T/agents.yaml"
sed -i '/^  raw_memory:/a\    task_config: {tool: test_value, send: mem_store, bytes: 262145}' "$T/agents.yaml"
sed -i '/^  raw_result:/a\    task_config: {tool: test_value, send: result, run_id: 1, bytes: 1048577}' "$T/agents.yaml"
sed -i '/^  deep_result:/a\    task_config: {tool: test_value, depth: 25}' "$T/agents.yaml"
sed -i '/^  big_result:/a\    task_config: {tool: test_value, bytes: 1048577}' "$T/agents.yaml"
start_agentd
wait_until 10 all_idle || fail "workers not idle"

last_exit() { events_json "$1" | jget "[e['payload']['reason'] for e in d if e['type']=='worker_exited'][-1:]"; }
for a in raw_event:"the event message's payload nests more than 24 levels" \
    raw_memory:"the mem_store message's content: 262145 bytes, over the limit of 262144" \
    raw_result:"the result message's result and usage: 1048577 bytes, over the limit of 1048576"; do
	name=${a%%:*} why=${a#*:}
	old=$(field "$name" pid)
	ctl run "$name" > /dev/null || fail "$name: run refused"
	wait_until 20 sh -c "$B/agentctl -s $SOCK --json events -n 1000 $name | grep -q worker_exited" ||
		fail "$name: the worker was not killed"
	last_exit "$name" | grep -qF "$why" || fail "$name: $(last_exit "$name")"
	wait_until 20 state_is "$name" idle || fail "$name: not restarted"
	[ "$(field "$name" pid)" != "$old" ] || fail "$name: same pid"
	note "$name: killed for $why"
done

for a in deep_result:"the run's result cannot be sent: the result message's result nests more than 24 levels" \
    big_result:"the run's result cannot be sent: the result message's result and usage: 1048577 bytes, over the limit of 1048576"; do
	name=${a%%:*} why=${a#*:}
	pid=$(field "$name" pid)
	ctl run "$name" > /dev/null || fail "$name: run refused"
	wait_until 20 sh -c "[ \"\$($B/agentctl -s $SOCK --json status $name | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"error_count\"])')\" = 1 ]" ||
		fail "$name: the run did not fail"
	events_json "$name" | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]" |
		grep -qF "$why" || fail "$name: $(events_json "$name" | jget "[e['payload'] for e in d if e['type']=='background_task_error']")"
	[ "$(field "$name" pid)" = "$pid" ] || fail "$name: the worker was restarted"
	note "$name: $why"
done

# An event's field too deep for the bounds (the arguments of a tool called
# with 24-deep kwargs) goes as cut text; the worker is not at fault.
pid=$(field deep_result pid)
deep=$(python3 -c "import json; v=1
for _ in range(23): v=[v]
print(json.dumps({'cmd':'run','agent':'deep_result','args':{'kwargs':{'depth':0,'deep':v}}}))")
python3 ../ctlclient.py "$SOCK" request "$deep" | jget "d['ok']" | grep -qx true || fail "the 24-deep run was refused"
wait_until 20 sh -c "$B/agentctl -s $SOCK --json events -n 1000 deep_result | grep -q '\"tool_call_result\"'" ||
	fail "the 24-deep run did not finish"
events_json deep_result | jget "[type(e['payload']['arguments']).__name__ for e in d if e['type']=='tool_call_started'][-1]" |
	grep -qx str || fail "the arguments were not cut to text"
[ "$(field deep_result pid)" = "$pid" ] || fail "the worker was killed for a deep event"
ctl events -n 1000 > /dev/null || fail "events unreadable"
exit 0
