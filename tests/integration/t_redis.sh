# event_store redis_stream against a real redis-server: events reach the
# seed's stream and the per-session streams with readable fields; Redis
# killed mid-flow and restarted loses nothing and duplicates nothing, per
# agent order holds; the same when Redis refuses writes (maxmemory with
# noeviction); a consumer group reads them; events in the outbox of a
# SIGKILLed agentd are shipped by the next one.
. ./lib.sh
use_redis

redis_start
{ header; cat <<YAML
  ticker:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 100ms
  other:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 150ms
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  event_store: redis_stream\n  memory_store: redis\n  redis: {port: $PORT}|" "$T/agents.yaml"
start_agentd
wait_until 5 sh -c "[ \$(redis-cli -p $PORT XLEN background_agent_events) -gt 20 ]" || fail "no events in Redis"
R XRANGE background_agent_events - + COUNT 1 | grep -q agent_name || fail "fields"
sid=$(field ticker session_id)
[ "$(R XLEN "background_agent_events:$sid")" -gt 0 ] || fail "no per-session stream"

# Redis dies mid-flow; events wait in the outbox; Redis comes back.
redis_kill
sleep 1
[ "$(outbox pending)" -gt 0 ] || fail "nothing waited in the outbox"
[ "$(ctl --json status | jget "d['outbox']['redis']")" = down ] || fail "status does not say redis is down"
redis_start
ctl pause ticker >/dev/null; ctl pause other >/dev/null
wait_until 10 outbox_is pending -eq 0 || fail "outbox not drained"

# Exactly once, in order: Redis holds exactly the events agentd stored.
check_stream() {
stream_entries background_agent_events > "$T/stream.json"
events_json > "$T/events.json"
python3 - "$T/stream.json" "$T/events.json" <<'PY' || fail "stream differs from the event log ($1)"
import json, sys
entries = json.load(open(sys.argv[1]))
stored = json.load(open(sys.argv[2]))
ids = [e["event_id"] for e in entries]
assert len(ids) == len(set(ids)), "duplicates in Redis"
want = [e["event_id"] for e in stored]
assert ids == want, f"Redis has {len(ids)} events, the log {len(want)}; order or content differ"
for agent in ("ticker", "other"):
    seqs = [int(e["seq"]) for e in entries if e["agent_name"] == agent]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{agent}: seq gaps or disorder"
json.loads(entries[0]["payload"])
print(f"  - {len(ids)} events in Redis, each once, in order")
PY
}
check_stream "after a Redis restart"

# Redis out of memory with noeviction refuses every write: events wait in
# the outbox, and go out once, in order, when memory is raised again.
R CONFIG SET maxmemory-policy noeviction >/dev/null
R CONFIG SET maxmemory "$(( $(R INFO memory | awk -F: '/^used_memory:/ {print $2+0}') + 4096 ))" >/dev/null
ctl resume ticker >/dev/null; ctl resume other >/dev/null
wait_until 10 outbox_is pending -gt 20 || fail "events did not wait while Redis refused writes"
grep -q "OOM" "$T/agentd.log" || fail "the OOM refusal was not logged"
R CONFIG SET maxmemory 0 >/dev/null
ctl pause ticker >/dev/null; ctl pause other >/dev/null
wait_until 10 outbox_is pending -eq 0 || fail "outbox not drained after OOM"
check_stream "after Redis refused writes (OOM)"

# A consumer group reads them all.
R XGROUP CREATE background_agent_events readers 0 >/dev/null
n=$(R --raw XREADGROUP GROUP readers c1 COUNT 100000 STREAMS background_agent_events '>' | grep -c "^background_task\|^worker_\|^tool_call" )
[ "$n" -gt 0 ] || fail "consumer group read nothing"

# Redis down, events made, agentd SIGKILLed: the next agentd ships them.
redis_kill
ctl resume ticker >/dev/null
sleep 0.5
ctl pause ticker >/dev/null
pending=$(outbox pending)
[ "$pending" -gt 0 ] || fail "no pending events before the SIGKILL"
kill_agentd
redis_start
before=$(R XLEN background_agent_events)
start_agentd
wait_until 10 outbox_is pending -eq 0 || fail "outbox of the killed agentd not shipped"
after=$(R XLEN background_agent_events)
[ $((after - before)) -ge "$pending" ] || fail "shipped $((after - before)) of $pending"
# Both lanes ran side by side: memory reached Redis too.
[ "$(R LLEN 'agentd:{ticker}:memory:episodic')" -gt 0 ] || fail "memory lane idle next to the event lane"
[ "$(ctl --json status | jget "d['outbox']['memory_pending']")" = 0 ] || fail "memory left behind"
# A new state db (new event ids from 1, a new epoch): its events still go
# out; the old cursors must not swallow them.
stop_agentd || fail "agentd did not stop"
rm -f "$T"/state/agentd.db*
before=$(R XLEN background_agent_events)
start_agentd
ctl resume ticker >/dev/null
wait_until 10 sh -c "[ \$(redis-cli -p $PORT XLEN background_agent_events) -ge $((before + 10)) ]" \
	|| fail "a rebuilt state db's events did not reach Redis"
exit 0
