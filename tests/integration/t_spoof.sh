# A worker says only what a worker may (test_send writes any message onto
# its pipe): the seed's lifecycle events are agentd's, so one a worker
# emits is dropped; an event it may emit is filed under its own agent,
# whatever its payload claims; a message only agentd sends, or a second
# ready, is a fault of that worker, killed and restarted with the reason;
# the other agents see nothing of it.
. ./lib.sh

hooks='env: {AGENTD_TEST_HOOKS: "1"}'
{ header; cat <<YAML
  spoofer:
    task_config: {tool: test_send, type: event, fields: {type: background_task_completed, payload: {agent_id: calm, forged: true}}}
    $hooks
  impostor:
    task_config: {tool: test_send, type: event, fields: {type: tool_call_result, payload: {agent_id: calm, forged: true}}}
    $hooks
  usurper:
    task_config: {tool: test_send, type: config, fields: {name: calm, agent: {}}}
    max_retries: 0
    restart: {policy: always, stable_after: 0s}
    $hooks
  doubler:
    task_config: {tool: test_send, type: ready, fields: {tools: []}}
    max_retries: 0
    restart: {policy: always, stable_after: 0s}
    $hooks
  calm:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "workers not idle"
calm_pid=$(field calm pid)
runs_are() { [ "$(field "$1" run_count)" = "$2" ] && [ "$(field "$1" is_running)" = false ]; }

for a in spoofer impostor; do
	ctl run $a >/dev/null
	wait_until 10 runs_are $a 1 || fail "$a did not run"
	[ "$(field $a error_count)" = 0 ] || fail "$a's run failed: $(field $a last_error)"
done
grep -q 'agent spoofer: worker may not emit event type "background_task_completed"; dropped' "$T/agentd.log" ||
	fail "the spoofed lifecycle event was not refused"
events_json > "$T/events.json"
python3 - "$T/events.json" <<'PY' || fail "forged events"
import json, sys
ev = json.load(open(sys.argv[1]))
forged = [e for e in ev if e["payload"].get("forged")]
assert [(e["type"], e["agent_name"], e["payload"]["agent_id"]) for e in forged] == \
    [("tool_call_result", "impostor", "impostor")], f"forged events kept as: {forged}"
done = [e for e in ev if e["type"] == "background_task_completed" and e["agent_name"] == "spoofer"]
assert len(done) == 1, f"{len(done)} completed events for spoofer's one run"
PY

for a in usurper:"worker sent a config message, which only agentd sends" doubler:"ready sent twice"; do
	n=${a%%:*} want=${a#*:}
	old=$(field $n pid)
	ctl run $n >/dev/null
	wait_until 10 sh -c "[ \"\$($B/agentctl -s $SOCK --json status $n | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"pid\"])')\" != $old ]" ||
		fail "$n's worker was not replaced"
	why=$(events_json $n | jget "[e['payload']['reason'] for e in d if e['type']=='worker_exited'][-1]")
	[ "$why" = "$want" ] || fail "$n: worker_exited says \"$why\""
	wait_until 10 state_is $n idle || fail "$n not back"
done
[ "$(field calm pid)" = "$calm_pid" ] || fail "calm was restarted"
[ "$(count_events calm worker_exited)" = 0 ] || fail "calm saw a worker exit"
exit 0
