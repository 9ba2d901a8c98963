# /metrics's outboxes against a real redis-server (event_store
# redis_stream, memory_store redis): while Redis is away the events and
# memory rows it has not taken are agentd_outbox_pending, and nothing is
# shipped; once it is back the outboxes drain to 0 and
# agentd_outbox_shipped_total counts what reached it -- every event of the
# stream, every memory row of the lists.
. ./lib.sh
use_redis
ticker_config "$T" "event_store: redis_stream" "memory_store: redis" "redis: {port: $PORT}"
start_agentd
scrape() { [ "$(hcode /metrics)" = 200 ] && cp "$T/http.body" "$T/metrics.txt"; }
mv() { awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.txt"; }
EV='{outbox="events",backend="redis_stream"}'
MEM='{outbox="memory",backend="redis"}'
pending_over() { scrape && [ "$(mv "agentd_outbox_pending$EV")" -gt "$1" ] && [ "$(mv "agentd_outbox_pending$MEM")" -gt "$1" ]; }
wait_until 20 pending_over 5 || fail "the outboxes do not fill while Redis is away: $(grep outbox "$T/metrics.txt")"
[ "$(mv "agentd_outbox_shipped_total$EV")" = 0 ] && [ "$(mv "agentd_outbox_shipped_total$MEM")" = 0 ] ||
	fail "shipped with no Redis: $(grep shipped "$T/metrics.txt")"
promtool check metrics < "$T/metrics.txt" || fail "promtool"
note "Redis away: $(mv "agentd_outbox_pending$EV") events and $(mv "agentd_outbox_pending$MEM") memory rows pending"

redis_start
ctl pause ticker > /dev/null || fail "pause"
drained() { scrape && [ "$(mv "agentd_outbox_pending$EV")" = 0 ] && [ "$(mv "agentd_outbox_pending$MEM")" = 0 ]; }
wait_until 30 drained || fail "the outboxes do not drain: $(grep outbox "$T/metrics.txt")"
# What a pass commits after the last scrape may still be on its way: the
# counts are compared once they agree with Redis's.
rows() { R --scan --pattern 'agentd:{ticker}:memory:*' | while read -r k; do R LLEN "$k"; done | awk '{ s += $1 } END { print s + 0 }'; }
agree() {
	scrape && [ "$(mv "agentd_outbox_pending$EV")" = 0 ] &&
		[ "$(mv "agentd_outbox_shipped_total$EV")" = "$(R XLEN background_agent_events)" ] &&
		[ "$(mv "agentd_outbox_shipped_total$MEM")" = "$(rows)" ]
}
wait_until 30 agree || fail "shipped $(mv "agentd_outbox_shipped_total$EV") events and $(mv "agentd_outbox_shipped_total$MEM") rows; Redis has $(R XLEN background_agent_events) and $(rows)"
[ "$(mv "agentd_outbox_shipped_total$EV")" -gt 5 ] || fail "too few shipped to tell"
note "Redis back: $(mv "agentd_outbox_shipped_total$EV") events and $(mv "agentd_outbox_shipped_total$MEM") memory rows shipped, as many as Redis holds"
