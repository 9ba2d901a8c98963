# memory_store redis against a real redis-server: every memory row reaches
# agentd:{<agent>}:memory:<type> (JSON items, oldest first, trimmed to
# memory_retention); while Redis is down rows wait in the SQLite outbox and
# runs still get their context; they arrive once, in order, when it is
# back, and the outbox of a SIGKILLed agentd is shipped by the next one.
# With state_store redis, agentd:{<agent>}:state follows the agent's state.
. ./lib.sh
use_redis
KEY='agentd:{ticker}:memory:episodic'
drained() { [ "$(outbox memory_pending)" = 0 ]; }

redis_start
ticker_config "$T" "memory_store: redis" "state_store: redis" "memory_retention: 5" "redis: {port: $PORT}"
start_agentd
[ "$(ctl --json status ticker | jget "d['memory_store']")" = redis ] || fail "status does not name the redis memory store"
wait_until 10 sh -c "[ \$(redis-cli -p $PORT LLEN '$KEY') -eq 5 ]" || fail "memory not in Redis, or not trimmed to 5"
R LINDEX "$KEY" -1 | jget "d['agent_id']=='ticker' and d['memory_type']=='episodic' and d['role']=='assistant' and 'count' in d['content']" \
	| grep -qx true || fail "item fields: $(R LINDEX "$KEY" -1)"
note "rows land in $KEY, trimmed to memory_retention"

# Redis down: rows wait, runs go on; back: shipped once, in order.
redis_kill
runs0=$(field ticker run_count)
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status ticker | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') -ge $((runs0 + 5)) ]" \
	|| fail "runs stopped while Redis was down"
[ "$(outbox memory_pending)" -gt 0 ] || fail "nothing waited in the memory outbox"
redis_start
ctl pause ticker >/dev/null
wait_until 10 drained || fail "memory outbox not drained"
check_list() {
	R --json LRANGE "$KEY" 0 -1 > "$T/list.json"
	ctl --json memory ticker -n 5 > "$T/local.json"
	python3 - "$T/list.json" "$T/local.json" <<'PY' || fail "Redis list differs from the local memory ($1)"
import json, sys
items = [json.loads(x) for x in json.load(open(sys.argv[1]))]
ids = [i["id"] for i in items]
assert ids == sorted(set(ids)), f"duplicates or disorder: {ids}"
local = json.load(open(sys.argv[2]))
assert [i["content"] for i in items] == [m["content"] for m in local][-len(items):], "contents differ"
assert len(items) == 5, f"{len(items)} items"
PY
}
check_list "after a Redis restart"
note "Redis killed and restarted: the newest rows, once each, in order"
state_synced() {
	[ "$(R HGET 'agentd:{ticker}:state' run_count)" = "$(field ticker run_count)" ] &&
	[ "$(R HGET 'agentd:{ticker}:state' paused)" = 1 ] &&
	[ "$(R HGET 'agentd:{ticker}:state' session_id)" = "$(field ticker session_id)" ]
}
wait_until 10 state_synced || fail "agentd:{ticker}:state does not follow: $(R HGETALL 'agentd:{ticker}:state' | tr '\n' ' ')"
note "agentd:{ticker}:state follows the agent (run_count, paused, session_id), across the restart"

# Redis down, rows made, agentd SIGKILLed: the next agentd ships them.
redis_kill
ctl resume ticker >/dev/null
sleep 0.6
ctl pause ticker >/dev/null
[ "$(outbox memory_pending)" -gt 0 ] || fail "no pending rows before the SIGKILL"
kill_agentd
redis_start
start_agentd
ctl pause ticker >/dev/null
wait_until 10 drained || fail "the killed agentd's memory outbox was not shipped"
check_list "after agentd was SIGKILLed"
note "a SIGKILLed agentd's memory outbox is shipped by the next one"
