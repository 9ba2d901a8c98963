# The basics: start, status, a manual run end to end, the seed's events and
# fields, agentctl's exit codes, the socket's mode, a clean SIGTERM stop
# (a worker busy in a tool that ignores it killed after stop_grace);
# an interval agent's first run one interval after start, or at once with
# run_on_start.
. ./lib.sh

{ header; cat <<YAML
  health:
    agent_id: health_id
    task_config:
      tool: system_info
      thresholds: {cpu_usage: 100, memory_usage: 100, disk_usage: 100}
  watcher:
    task_config: {tool: new_files, directories: ["$T"], file_types: [".txt"]}
    interval: 1h
  eager:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 1h
    run_on_start: true
  busy:
    task_config: {tool: test_spin, args: {seconds: 30}}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"

[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode $(stat -c %a "$SOCK")"
[ "$(field health agent_id)" = health_id ] || fail "agent_id"
[ "$(field health schedule)" = manual ] || fail "schedule"
[ "$(field watcher next_run)" != null ] || fail "interval agent has no next_run"
sid=$(field health session_id)
case "$sid" in background_health_id_*) ;; *) fail "session_id $sid" ;; esac
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status eager | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') = 1 ]" ||
	fail "run_on_start: no run at start"
[ "$(field watcher run_count)" = 0 ] || fail "an interval agent ran at start"

ctl run health >/dev/null || fail "run refused"
wait_until 5 sh -c "[ \"\$($B/agentctl -s $SOCK --json status health | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"last_success\"])')\" != None ]" \
	|| fail "run did not complete"
[ "$(field health run_count)" = 1 ] || fail "run_count"

ev=$(events_json health)
for t in background_task_started background_task_completed background_agent_status \
    worker_spawned tool_call_started tool_call_result; do
	echo "$ev" | jget "[e for e in d if e['type']=='$t']" | grep -q '{' || fail "no $t event"
done
echo "$ev" | jget "[e for e in d if e['type']=='background_task_started'][0]['payload']" |
	jget "sorted(k for k in ['agent_id','session_id','timestamp','run_count','kwargs'] if k not in d)" |
	grep -qx '\[\]' || fail "started payload lacks seed fields"
echo "$ev" | jget "[e for e in d if e['type']=='background_task_completed'][0]['payload']['result']['status']" |
	grep -qx ok || fail "completed payload lacks the tool's result"
echo "$ev" | jget "all(e['seq']==i+1 for i,e in enumerate(d))" | grep -qx true || fail "seq not 1,2,3..."
echo "$ev" | jget "all(set(e)>={'event_id','type','agent_name','timestamp','payload','seq'} for e in d)" |
	grep -qx true || fail "event envelope"

# The run's exchange is the agent's episodic memory, and only its own.
ctl --json memory health | jget "len(d)==1 and d[0]['memory_type']=='episodic'" | grep -qx true ||
	fail "no episodic memory after a run"
ctl --json memory watcher | jget "len(d)" | grep -qx 0 || fail "another agent's memory leaked"
ctl memory health --type procedural >/dev/null || fail "memory --type"
ctl memory health --type bogus >/dev/null 2>&1; [ $? = 2 ] || fail "bad memory type accepted"

ctl status nosuch >/dev/null 2>&1; [ $? = 3 ] || fail "unknown agent exit code"
ctl frobnicate >/dev/null 2>&1; [ $? = 2 ] || fail "usage exit code"
ctl pause >/dev/null 2>&1; [ $? = 2 ] || fail "missing agent exit code"
"$B/agentctl" -s "$T/nope.sock" status >/dev/null 2>&1; [ $? = 4 ] || fail "unreachable exit code"
ctl list | grep -q watcher || fail "list"
ctl status | head -1 | grep -q "AGENT *STATE *PID *UPTIME *RUNS *ERRORS *LAST RUN *NEXT RUN *RESTARTS" || fail "table header"

ctl run busy >/dev/null
wait_until 10 sh -c "AGENTD_SOCKET=$SOCK $B/agentctl --json events -n 100 busy | grep -q tool_call_started" ||
	fail "busy did not start its tool"
pids="$(field health pid) $(field watcher pid) $(field busy pid)"
kill -TERM "$AGENTD_PID"
wait_until 10 gone "$AGENTD_PID" || fail "agentd did not stop with a worker busy past stop_grace"
wait "$AGENTD_PID" || fail "agentd exit code $?"
AGENTD_PID=
grep -q "agent busy: worker [0-9]* did not exit within 1000 ms; SIGKILL" "$T/agentd.log" ||
	fail "the busy worker was not killed after stop_grace"
for p in $pids; do kill -0 "$p" 2>/dev/null && fail "worker $p still alive after stop"; done
[ -S "$SOCK" ] && fail "socket left behind"
grep -q "agentd stopped" "$T/agentd.log" || fail "no stop line"
exit 0
