# Runs: retries only for retryable failures, retry_delay doubling per
# attempt; overlap skip counted, the skipped run dropped; pause and resume;
# queue; cancel_previous.
. ./lib.sh

{ header; cat <<YAML
  flaky:
    task_config: {tool: test_fail, args: {retryable: true, message: "upstream 503"}}
    max_retries: 3
    retry_delay: 100ms
    env: {AGENTD_TEST_HOOKS: "1"}
  broken:
    task_config: {tool: test_fail, args: {retryable: false, message: "bad request"}}
    max_retries: 3
    retry_delay: 100ms
    env: {AGENTD_TEST_HOOKS: "1"}
  slow:
    task_config: {tool: test_sleep, args: {seconds: 1}}
    interval: 200ms
    env: {AGENTD_TEST_HOOKS: "1"}
  queued:
    task_config: {tool: test_sleep, args: {seconds: 0.3}}
    overlap: queue
    env: {AGENTD_TEST_HOOKS: "1"}
  newer:
    task_config: {tool: test_sleep, args: {seconds: 60}}
    overlap: cancel_previous
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "workers not idle"

ctl run flaky >/dev/null
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status flaky | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"error_count\"])') -ge 4 ]" || fail "flaky not retried 3 times"
errs=$(events_json flaky | jget "[(e['payload']['attempt'], e['payload']['will_retry']) for e in d if e['type']=='background_task_error']")
[ "$errs" = '[[1, true], [2, true], [3, true], [4, false]]' ] || fail "flaky attempts: $errs"
# retry_delay 100 ms doubling, with equal jitter: attempt k waits between
# half and all of 100 ms * 2^(k-1), so the gaps between the errors are at
# least 50, 100 and 200 ms (a delay that did not double stays under 100).
gaps=$(events_json flaky | jget "(lambda t: [round((t[i+1]-t[i]).total_seconds()*1000) for i in range(len(t)-1)])([__import__('datetime').datetime.fromisoformat(e['timestamp'].replace('Z', '+00:00')) for e in d if e['type']=='background_task_error'])")
note "flaky retry gaps (ms): $gaps"
echo "$gaps" | jget "len(d) == 3 and d[0] >= 49 and d[1] >= 99 and d[2] >= 199" | grep -qx true ||
	fail "the retry delay did not double: gaps $gaps ms"
[ "$(field flaky run_count)" = 1 ] || fail "retries counted as runs"
[ "$(field flaky status)" = error ] || fail "seed status after failure: $(field flaky status)"

ctl run broken >/dev/null
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status broken | python3 -c 'import json,sys; d=json.load(sys.stdin); print(int(d[\"error_count\"] > 0 and not d[\"is_running\"]))') = 1 ]" ||
	fail "broken's run did not end"
errs=$(events_json broken | jget "[(e['payload']['attempt'], e['payload']['retryable']) for e in d if e['type']=='background_task_error']")
[ "$errs" = '[[1, false]]' ] || fail "a non-retryable failure was retried: $errs"

# Overlap skip: a 1 s run every 200 ms.
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status slow | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"skipped_count\"])') -ge 2 ]" || fail "no skipped runs counted"
[ "$(count_events slow background_task_skipped)" -ge 2 ] || fail "no skipped events"
why=$(events_json slow | jget "sorted(set(e['payload']['reason'] for e in d if e['type']=='background_task_skipped'))")
echo "$why" | jget "all(__import__('re').fullmatch(r'previous run \(\d+\) still in progress', r) for r in d)" |
	grep -qx true || fail "skipped for another reason: $why"

# Pause: no more runs, no next run; resume: runs again.
ctl pause slow >/dev/null || fail "pause"
wait_until 3 sh -c "[ \"\$($B/agentctl -s $SOCK --json status slow | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"is_running\"])')\" = False ]" || fail "run did not finish"
n=$(field slow run_count)
sleep 0.7
[ "$(field slow run_count)" = "$n" ] || fail "a paused agent ran"
[ "$(field slow next_run)" = null ] || fail "paused agent has a next run"
[ "$(field slow paused)" = true ] || fail "not shown paused"
ctl resume slow >/dev/null || fail "resume"
wait_until 3 sh -c "[ \$($B/agentctl -s $SOCK --json status slow | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') -gt $n ]" || fail "resumed agent did not run"

# Queue: three requests while one runs -> all run, one after another.
for i in 1 2 3; do ctl run queued >/dev/null; done
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status queued | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') -eq 3 ]" || fail "queued runs did not all run"
[ "$(field queued skipped_count)" = 0 ] || fail "queue skipped runs"

# cancel_previous: a run while one is in progress cancels it, then runs.
started() { [ "$(count_events newer tool_call_started)" -ge "$1" ]; }
ctl run newer >/dev/null
wait_until 10 started 1 || fail "newer's first run did not start"
ctl run newer >/dev/null
wait_until 10 started 2 || fail "the newer run did not start"
events_json newer | jget "[(e['payload']['error'], e['payload']['retryable']) for e in d if e['type']=='background_task_error']" |
	grep -qxF '[["cancelled: cancelled by a newer run (overlap: cancel_previous)", false]]' ||
	fail "the previous run was not cancelled: $(events_json newer | jget "[e['payload'] for e in d if e['type']=='background_task_error']")"
[ "$(field newer run_count)" = 2 ] || fail "cancel_previous: run_count $(field newer run_count)"
exit 0
