# A lane whose SCRIPT LOAD fails on a Redis that is up (NOPERM here; LOADING
# while Redis reads its data is the same case) tries again after the
# relay's backoff, saying why in status and the log, instead of waiting
# for a reconnection that never comes -- the event lane and the memory
# lane, each alone.  Real redis-server with an ACL.
. ./lib.sh
use_redis
redis_start

refused_then_allowed() { # what: the lane (events|memory), then the config lines
	local what=$1; shift
	R ACL SETUSER default -script >/dev/null || fail "ACL SETUSER"
	ticker_config "$T" "$@" "redis: {port: $PORT}"
	start_agentd
	lane_err() { ctl --json status | jget "d['outbox']['last_error'] or ''" | grep -q "SCRIPT LOAD: NOPERM"; }
	wait_until 15 lane_err || fail "$what: the refused SCRIPT LOAD not in status: $(ctl --json status | jget "d['outbox']")"
	wait_until 15 grep -q "SCRIPT LOAD: NOPERM.*trying again in" "$T/agentd.log" || fail "$what: the retry not logged"
	[ "$(shipped)" = 0 ] || fail "$what: shipped without the script"
	R ACL SETUSER default +script >/dev/null || fail "ACL SETUSER"
	wait_until 20 is_shipped || fail "$what: not shipped once SCRIPT was allowed"
	ctl --json status | jget "d['outbox']['last_error'] is None and 'NOPERM' in d['outbox']['last_failure']['error']" | grep -qx true ||
		fail "$what: the error stayed, or the episode was not kept: $(ctl --json status | jget "d['outbox']")"
	stop_agentd
	mv "$T/agentd.log" "$T/agentd.$what.log"
	note "$what: SCRIPT refused, then allowed: shipped with no reconnection"
}
is_shipped() { [ "$(shipped)" -gt 0 ]; }

shipped() { R XLEN background_agent_events; }
refused_then_allowed events "event_store: redis_stream"
shipped() { R LLEN 'agentd:{ticker}:memory:episodic'; }
refused_then_allowed memory "memory_store: redis"
exit 0
