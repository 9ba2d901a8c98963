# A frozen Redis (redis-server under SIGSTOP: the kernel still accepts
# connections, nothing answers) is shown as it is: unresponsive while a
# command waits, then down, and never up again until it answers -- then up,
# with the error gone from last_error and kept only as history (when it
# began and ended), and every event shipped once.  Frozen while nothing
# is sent (the agent paused), the idle probe finds it.
. ./lib.sh
use_redis
redis_start
ticker_config "$T" "event_store: redis_stream" "redis: {port: $PORT}"
start_agentd
wait_until 10 sh -c "[ \$(redis-cli -p $PORT XLEN background_agent_events) -gt 5 ]" || fail "no events in Redis"
redis_is() { [ "$(ctl --json status | jget "d['outbox']['redis']")" = "$1" ]; }
[ "$(ctl --json status | jget "d['outbox']['last_error']")" = null ] || fail "an error before anything failed"

kill -STOP "$REDIS_PID"
at_exit 'kill -CONT $REDIS_PID'
wait_until 10 redis_is unresponsive || fail "a frozen Redis is not shown unresponsive: $(ctl --json status | jget "d['outbox']")"
ctl --json status | jget "d['outbox']['last_error']" | grep -q "no reply for" || fail "no reason while unresponsive"
wait_until 20 redis_is down || fail "a frozen Redis is not shown down after the reply timeout"
# Reconnects are accepted by the kernel and answered by nobody: never up.
end=$(( $(date +%s) + 8 ))
while [ "$(date +%s)" -lt "$end" ]; do
	st=$(ctl --json status | jget "d['outbox']['redis']")
	[ "$st" = up ] && fail "a frozen Redis shown up: $(ctl --json status | jget "d['outbox']")"
	sleep 0.3
done
ctl --json status | jget "d['outbox']['last_error']" | grep -q "no answer\|no reply" || fail "down without the reason: $(ctl --json status | jget "d['outbox']['last_error']")"
[ "$(outbox pending)" -gt 0 ] || fail "nothing waits in the outbox"

kill -CONT "$REDIS_PID"
wait_until 20 redis_is up || fail "not up once Redis answers again"
wait_until 20 outbox_is pending -eq 0 || fail "outbox not drained"
[ "$(ctl --json status | jget "d['outbox']['last_error']")" = null ] || fail "the old error stays: $(ctl --json status | jget "d['outbox']['last_error']")"
ctl --json status | jget "d['outbox']['last_failure']" > "$T/failure.json"
jget "d['until'] is not None and d['at'] <= d['until'] and ('no reply' in d['error'] or 'no answer' in d['error'])" < "$T/failure.json" | grep -qx true ||
	fail "no history of the failure: $(cat "$T/failure.json")"
note "after recovery: last_error null, last_failure $(cat "$T/failure.json")"
ctl pause ticker >/dev/null
wait_until 20 outbox_is pending -eq 0 || fail "outbox not drained"
n=$(events_json | jget "len(d)")
[ "$(R XLEN background_agent_events)" = "$n" ] || fail "Redis has $(R XLEN background_agent_events) events, the log $n"

# Frozen while agentd has nothing to send: the idle probe finds it.
kill -STOP "$REDIS_PID"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status | grep -q '\"redis\": \"\(unresponsive\|down\)\"'" ||
	fail "a Redis frozen while idle still shown: $(ctl --json status | jget "d['outbox']")"
kill -CONT "$REDIS_PID"
wait_until 20 redis_is up || fail "not up once the idle Redis answers again"
note "frozen while idle: found by the probe, up again after"
exit 0
