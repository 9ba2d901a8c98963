# A worker that writes garbage or an oversize frame onto its pipe is killed
# and restarted with an event saying why; agentd and the others go on.
. ./lib.sh

{ header; cat <<YAML
  garbler:
    task_config: {tool: test_garbage}
    max_retries: 0
    restart: {policy: always, stable_after: 0s}
    env: {AGENTD_TEST_HOOKS: "1"}
  bloater:
    task_config: {tool: test_oversize}
    max_retries: 0
    restart: {policy: always, stable_after: 0s}
    env: {AGENTD_TEST_HOOKS: "1"}
  calm:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"
calm_pid=$(field calm pid)

for a in garbler bloater; do
	old=$(field $a pid)
	ctl run $a >/dev/null
	wait_until 5 sh -c "[ \"\$($B/agentctl -s $SOCK --json status $a | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d[\"pid\"])')\" != $old ]" || fail "$a not restarted"
	why=$(events_json $a | jget "[e['payload']['reason'] for e in d if e['type']=='worker_exited'][-1]")
	note "$a: $why"
	case $a in
	garbler) echo "$why" | grep -q "bad message" || fail "garbler: $why" ;;
	bloater) echo "$why" | grep -q "bad frame" || fail "bloater: $why" ;;
	esac
	wait_until 5 state_is $a idle || fail "$a not idle again"
done
kill -0 "$AGENTD_PID" || fail "agentd died"
[ "$(field calm pid)" = "$calm_pid" ] || fail "calm was restarted"
ctl run calm >/dev/null || fail "calm refused a run"
exit 0
