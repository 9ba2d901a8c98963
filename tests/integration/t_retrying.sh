# A run waiting out its retry delay is shown as such: state `retrying`, the
# attempt it waits to make and when (current_run.attempt, retry_at), and a
# run skipped meanwhile says it waits to retry.  `agentctl run` on it makes
# the waiting attempt now.  A 429 whose Retry-After is beyond
# retry_max_delay (99999999 s) is honoured only up to retry_max_delay, and
# the attempt's error says what the server asked for.
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{
 "park": [{"status": 429, "headers": {"retry-after": "99999999"}, "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}},
          {"body": {"openai_text": "ok after the capped wait"}}],
 "hold": [{"status": 429, "headers": {"retry-after": "99999999"}, "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}},
          {"body": {"openai_text": "ok when asked"}}]
}
JSON
start_fakemodel
model() { # name, retry_max_delay
	cat <<YAML
  $1:
    system_instruction: "You watch this machine."
    model_config: {provider: openai, model: fake-model, base_url: "http://127.0.0.1:$PORT/$1/v1", request_timeout: 10s}
    task_config: {query: "Check"}
    local_tools: [system_info]
    max_retries: 1
    retry_delay: 100ms
    retry_max_delay: $2
YAML
}
{ header; cat <<YAML
  flaky:
    task_config: {tool: test_fail, args: {retryable: true, message: "upstream 503"}}
    max_retries: 3
    retry_delay: 1h
    interval: 300ms
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
  model park 2s; model hold 1h; } | write_config
export OPENAI_API_KEY=sk-test-x
start_agentd
# flaky's first run (300 ms in) may fail before the others are up: then it
# retries in an hour, and is never idle again
up() { ctl --json status | jget "all(a['state'] in ('idle', 'retrying') for a in d['agents'])" | grep -qx true; }
wait_until 10 up || fail "workers not up"
now() { python3 -c 'import time; print(time.time())'; }
# due_within NAME LO HI: its next attempt is due between LO and HI seconds from now.
due_within() {
	ctl --json status "$1" | python3 -c '
import datetime, json, sys, time
d = json.load(sys.stdin); lo, hi = float(sys.argv[1]), float(sys.argv[2])
at = datetime.datetime.fromisoformat(d["current_run"]["retry_at"].replace("Z", "+00:00")).timestamp()
sys.exit(0 if lo <= at - time.time() <= hi else 1)' "$2" "$3"
}

# A retryable failure with retry_delay 1h: retrying, attempt 2, due in 30-60 min.
wait_until 10 state_is flaky retrying || fail "flaky not retrying: $(field flaky state)"
[ "$(ctl --json status flaky | jget "d['current_run']['attempt']")" = 2 ] || fail "not waiting for attempt 2: $(field flaky current_run)"
due_within flaky 1700 3700 || fail "retry_at not 30-60 min away: $(field flaky current_run)"
ctl status | grep flaky | grep -q retrying || fail "the status table does not say retrying"
# The scheduled ticks meanwhile are skipped, saying why.
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status flaky | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"skipped_count\"])') -ge 2 ]" || fail "no skipped ticks"
events_json flaky | jget "[e['payload']['reason'] for e in d if e['type']=='background_task_skipped'][-1]" > "$T/reason"
grep -q "is waiting to retry: attempt 2 at " "$T/reason" || fail "skip reason: $(cat "$T/reason")"
# agentctl run: the waiting attempt goes now (and fails again: attempt 3 waits).
ctl run flaky > "$T/run.out" || fail "run on a retrying agent refused: $(cat "$T/run.out")"
grep -q "retry of the current run goes now" "$T/run.out" || fail "run answer: $(cat "$T/run.out")"
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status flaky | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"current_run\"][\"attempt\"])') = 3 ]" ||
	fail "the waiting attempt did not run: $(field flaky current_run)"
[ "$(field flaky run_count)" = 1 ] || fail "agentctl run started a new run instead"
wait_until 10 state_is flaky retrying || fail "flaky not retrying again"

# 429 asking for 99999999 s, retry_max_delay 2s: waits 2 s, not years.
ctl run park >/dev/null || fail "run park"
wait_until 10 state_is park retrying || fail "park not retrying: $(field park state)"
due_within park -1 2.5 || fail "park's retry is not due within retry_max_delay: $(field park current_run)"
events_json park | jget "[e['payload'] for e in d if e['type']=='background_task_error'][0]" > "$T/err.json"
jget "d['retryable'] and d['will_retry'] and 'asked to wait 99999999s, more than retry_max_delay 2s' in d['error'] and d['retry_in_ms'] <= 2000" < "$T/err.json" |
	grep -qx true || fail "park's error: $(cat "$T/err.json")"
wait_until 20 sh -c "[ \$($B/agentctl -s $SOCK --json events -n 100 park | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"]==\"background_task_completed\"]))') = 1 ]" ||
	fail "park did not complete after the capped wait"
python3 -c "import json; r=[json.loads(l) for l in open('$T/requests.log') if json.loads(l)['scenario']=='park']; exit(0 if len(r)==2 and r[1]['t']-r[0]['t'] >= 0.9 else 1)" ||
	fail "the capped wait was not waited"

# retry_max_delay 1h: retrying, due within the hour (not in three years);
# agentctl run sends the attempt now, and it completes.
ctl run hold >/dev/null || fail "run hold"
wait_until 10 state_is hold retrying || fail "hold not retrying"
due_within hold 1700 3700 || fail "hold's retry not within retry_max_delay: $(field hold current_run)"
ctl run hold >/dev/null || fail "run on retrying hold refused"
wait_until 20 sh -c "[ \$($B/agentctl -s $SOCK --json events -n 100 hold | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"]==\"background_task_completed\"]))') = 1 ]" ||
	fail "hold did not complete when asked"
wait_until 10 state_is hold idle || fail "hold not idle after its run"
exit 0
