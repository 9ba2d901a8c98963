# Crashes: kill -9 of a stable worker is repaired at once and nobody else
# notices; restart: never leaves a killed worker down, on-failure restarts
# it but not one that exited 0; a worker that dies on every start backs
# off, goes fatal, and `agentctl restart` / a fixed config bring it back.
. ./lib.sh

crasher_env() {
	cat <<YAML
    env:
      AGENTD_TEST_HOOKS: "1"
      AGENTD_TEST_CRASH_AT_START: "$1"
YAML
}
config() {
	{ header; cat <<YAML
  victim:
    task_config: {tool: system_info}
    restart: {policy: always, stable_after: 0s}
  bystander:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 300ms
  never:
    task_config: {tool: system_info}
    restart: never
  onfail:
    task_config: {tool: test_exit, args: {code: 0}}
    restart: {policy: on-failure, stable_after: 0s}
    max_retries: 0
    env: {AGENTD_TEST_HOOKS: "1"}
  crasher:
    task_config: {tool: system_info}
    restart: {policy: always, backoff: 100ms, max_backoff: 300ms, max_restarts: 4, window: 60s}
YAML
	crasher_env "$1"; } | write_config
}
config SEGV
start_agentd
wait_until 5 state_is victim idle || fail "victim not idle"
wait_until 5 state_is bystander idle || fail "bystander not idle"

# kill -9: back at once, the bystander untouched.
old=$(field victim pid)
by_pid=$(field bystander pid)
by_runs=$(field bystander run_count)
t0=$(date +%s%N)
kill -9 "$old"
wait_until 5 sh -c "p=\$($B/agentctl -s $SOCK --json status victim | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"pid\"])'); [ \"\$p\" != None ] && [ \"\$p\" != $old ]" || fail "victim not restarted"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "victim back with a new pid after ${ms} ms (polled through agentctl)"
# At once means no backoff (how fast is scripts/bench's to measure).
events_json victim | jget "[e['payload']['delay_ms'] for e in d if e['type']=='worker_restarting']" |
	grep -qx '\[0\]' || fail "a stable worker was restarted with a delay"
wait_until 5 state_is victim idle || fail "victim not idle again"
events_json victim | jget "[e['payload'] for e in d if e['type']=='worker_exited'][-1]" |
	jget "d['signal']==9 and d['pid']==$old" | grep -qx true || fail "worker_exited lacks signal 9"
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status bystander | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') -gt $((by_runs + 2)) ]" || fail "bystander stopped running"
[ "$(field bystander pid)" = "$by_pid" ] || fail "bystander was restarted"
[ "$(field bystander error_count)" = 0 ] || fail "bystander saw errors"

# restart: never and on-failure.
wait_until 10 state_is never idle || fail "never not idle"
wait_until 10 state_is onfail idle || fail "onfail not idle"
kill -9 "$(field never pid)"
wait_until 5 state_is never stopped || fail "restart: never left $(field never state)"
old=$(field onfail pid)
kill -9 "$old"
back() { [ "$(field "$1" pid)" != "$2" ] && state_is "$1" idle; }
wait_until 5 back onfail "$old" || fail "on-failure did not restart a killed worker"
ctl run onfail >/dev/null	# its worker exits 0
wait_until 5 state_is onfail stopped || fail "on-failure restarted a worker that exited 0 ($(field onfail state))"
[ "$(count_events never worker_restarting)" = 0 ] || fail "restart: never restarted"
[ "$(count_events onfail worker_restarting)" = 1 ] || fail "on-failure: not one restart"

# A worker that segfaults at every start: the backoff doubles from backoff
# up to max_backoff, then the agent goes fatal.
wait_until 20 state_is crasher fatal || fail "crasher never went fatal ($(field crasher state))"
spawns=$(events_json crasher | jget "[e['payload']['delay_ms'] for e in d if e['type']=='worker_restarting']")
note "crasher restart delays: $spawns"
[ "$spawns" = "[100, 200, 300, 300]" ] || fail "backoff not doubled up to max_backoff (300 ms): $spawns"
[ "$(count_events crasher worker_fatal)" = 1 ] || fail "no worker_fatal event"
events_json crasher | jget "[e['payload'] for e in d if e['type']=='worker_exited'][-1]['signal']" |
	grep -qx 11 || fail "crasher's exit was not SIGSEGV"
ctl status | grep crasher | grep -q fatal || fail "status table does not show fatal"
ctl run crasher >/dev/null 2>&1 && fail "a fatal agent accepted a run"

# agentctl restart revives it (it crashes again: still the same config).
ctl restart crasher >/dev/null || fail "restart refused"
st=$(field crasher state)
[ "$st" != fatal ] || fail "restart left it fatal"
# Fix the config: the changed agent is restarted and comes up.
config ""
kill -HUP "$AGENTD_PID"
wait_until 10 state_is crasher idle || fail "crasher not revived by a fixed config ($(field crasher state))"
[ "$(field bystander pid)" = "$by_pid" ] || fail "bystander restarted by reload"
exit 0
