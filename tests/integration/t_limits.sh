# Limits: a worker that allocates past its memory limit, and a run that
# spins past run_timeout, are stopped and reported; the other agent keeps
# its schedule and its worker.  A worker's tools run under its limits
# (open_files, processes, cpu_time), umask 077, no_new_privs, in its own
# directory.
. ./lib.sh

{ header; cat <<YAML
  hog:
    task_config: {tool: test_alloc, args: {bytes: 536870912}}
    limits: {memory: 64M}
    max_retries: 0
    env: {AGENTD_TEST_HOOKS: "1"}
  spinner:
    task_config: {tool: test_spin, args: {seconds: 0}}
    run_timeout: 500ms
    max_retries: 0
    env: {AGENTD_TEST_HOOKS: "1"}
  steady:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 200ms
  jailed:
    local_tools:
      - name: jail
        command: ["/bin/bash", "-c", "ulimit -n; ulimit -u; ulimit -t; umask; pwd; grep ^NoNewPrivs: /proc/self/status"]
    task_config: {tool: jail}
    limits: {open_files: 64, processes: 4096, cpu_time: 1h}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"
steady_pid=$(field steady pid)

# Memory: RLIMIT_AS makes the allocation fail in the worker, or the cgroup's
# OOM killer kills it; either way the run fails and says so.
ctl run hog >/dev/null
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status hog | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"error_count\"])') -ge 1 ]" || fail "hog's run did not fail"
err=$(events_json hog | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]")
note "over the memory limit: $err"
echo "$err" | grep -Eqi "cannot allocate|signal 9|out of memory" || fail "unexpected error: $err"

# Timeout: cancel is ignored by the spinning tool; after the grace the
# group is killed and the worker restarted.
old=$(field spinner pid)
ctl run spinner >/dev/null
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status spinner | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"error_count\"])') -ge 1 ]" || fail "spinner's run did not time out"
err=$(events_json spinner | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]")
note "past run_timeout: $err"
echo "$err" | grep -q "timeout" || fail "error does not say timeout: $err"
wait_until 5 state_is spinner idle || fail "spinner not back"
[ "$(field spinner pid)" != "$old" ] || fail "spinner's worker was not restarted"
kill -0 "$old" 2>/dev/null && fail "old spinner still alive"

ctl run jailed >/dev/null
wait_until 10 sh -c "[ \"\$($B/agentctl -s $SOCK --json status jailed | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"last_success\"])')\" != None ]" ||
	fail "jailed did not run: $(field jailed last_error)"
got=$(events_json jailed | jget "[e['payload']['result']['output'] for e in d if e['type']=='background_task_completed'][-1]")
want=$(printf '64\n4096\n3600\n0077\n%s\nNoNewPrivs:\t1' "$T/state/agents/jailed")
[ "$got" = "$want" ] || fail "a tool's limits, umask, privileges or directory: got [$got] want [$want]"

[ "$(field steady pid)" = "$steady_pid" ] || fail "steady was restarted"
[ "$(field steady error_count)" = 0 ] || fail "steady saw errors"
[ "$(field steady run_count)" -ge 5 ] || fail "steady did not keep its schedule"
exit 0
