# The outbox is bounded (4x event_retention): with Redis away long enough,
# the oldest unshipped events go -- never silently: the log, agentctl
# status and an events_dropped event per agent say so, and that event
# reaches Redis with the rest once it is back, where the gap is.
. ./lib.sh
use_redis
ticker_config "$T" "event_store: redis_stream" "event_retention: 5" "redis: {port: $PORT}"
start_agentd	# Redis is not there yet
wait_until 15 outbox_is dropped -gt 0 \
	|| fail "the outbox never reached its bound"
grep -q "outbox full" "$T/agentd.log" || fail "the drop was not logged"
ev=$(events_json ticker | jget "[e for e in d if e['type']=='events_dropped']")
echo "$ev" | jget "len(d) > 0 and all(e['payload']['dropped'] > 0 and e['payload']['agent_id'] == 'ticker' and e['payload']['first_seq'] <= e['payload']['last_seq'] for e in d)" |
	grep -qx true || fail "no events_dropped event: $ev"
[ "$(ctl --json status | jget "d['outbox']['pending']")" -le 20 ] || fail "the outbox grew past its bound"
ctl pause ticker >/dev/null
redis_start
wait_until 10 outbox_is pending -eq 0 \
	|| fail "the outbox did not drain"
R --raw XRANGE background_agent_events - + | grep -qx events_dropped || fail "events_dropped did not reach Redis"
note "$(outbox dropped) events dropped at the bound, and said so"
exit 0
