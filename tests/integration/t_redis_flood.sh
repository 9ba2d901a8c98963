# The relay under a flood: a worker emitting events as fast as its pipe
# takes them.  agentd keeps answering while it lasts (a chatty worker does
# not hold the loop); SIGKILLed with batches in flight (some landed in
# Redis, not yet recorded as shipped) and started again, it ships the rest
# and every event is in Redis exactly once, in order, in both streams.
. ./lib.sh
use_redis
redis_start
COUNT=50000
{ header; cat <<YAML
  flood:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_emit, count: $COUNT}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  event_store: redis_stream\n  event_retention: 200000\n  redis: {port: $PORT}|" "$T/agents.yaml"
sed -i "s|log_level: debug|log_level: info|" "$T/agents.yaml"
start_agentd
wait_until 10 all_idle || fail "the worker did not come up"
ctl run flood >/dev/null
wait_until 20 sh -c "[ \$(redis-cli -p $PORT XLEN background_agent_events) -ge 2000 ]" \
	|| fail "the flood did not reach Redis"
timeout 5 "$B/agentctl" -s "$SOCK" status >/dev/null || fail "agentd did not answer during the flood"
# Stopped first, so Redis runs what is in flight while agentd cannot record
# it: those batches are in Redis and not shipped as far as the store knows.
kill -STOP "$AGENTD_PID"
sleep 0.5
kill_agentd
landed=$(R XLEN background_agent_events)
[ "$landed" -lt $((COUNT + 2)) ] || fail "the flood was over before the kill ($landed in Redis)"
note "agentd killed with $landed events in Redis"
start_agentd
wait_until 60 outbox_is pending -eq 0 \
	|| fail "the outbox was not shipped after the restart"
sid=$(events_json flood | jget "[e['payload']['session_id'] for e in d if e['type']=='tool_call_bench'][0]")

# Each stream: no event twice, the flood's sequence numbers with no gap and
# in order, and as many as the store has (what the kill cut off is not in
# the store either: the worker died with agentd).
stored=$("$B/agentctl" -s "$SOCK" --json status | jget "d['outbox']['shipped_id']")
for stream in background_agent_events "background_agent_events:$sid"; do
	stream_entries "$stream" > "$T/stream.json"
	python3 - "$T/stream.json" "$stream" <<'PY' || fail "$stream: not exactly once, in order"
import json, sys
entries = json.load(open(sys.argv[1]))
ids = [e["event_id"] for e in entries]
assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates"
flood = [int(e["seq"]) for e in entries if e["agent_name"] == "flood"]
assert flood == list(range(flood[0], flood[0] + len(flood))), "seq gaps or disorder"
bench = sum(1 for e in entries if e["type"] == "tool_call_bench")
print(f"  - {sys.argv[2]}: {len(ids)} events, {bench} of the flood, each once, in order")
PY
done
# The global stream holds every event the store has.
total=$(R XLEN background_agent_events)
[ "$total" = "$stored" ] || fail "Redis has $total events, the store $stored"
exit 0
