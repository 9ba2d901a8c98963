# Redis over a unix socket, with a password and a database number: a wrong
# password is a clear error in the log and in status (and never the
# password itself), events wait in the outbox; with the right one (from
# REDIS_PASSWORD) they land in the configured database.
. ./lib.sh
command -v redis-server >/dev/null || fail "redis-server missing (scripts/bootstrap installs it)"
RSOCK="$T/redis.sock"
redis-server --port 0 --unixsocket "$RSOCK" --unixsocketperm 700 --requirepass s3cret-pw \
	--dir "$T" --save "" --appendonly no > "$T/redis.log" 2>&1 &
RPID=$!
at_exit 'kill -9 $RPID; wait $RPID 2>/dev/null'
RS() { redis-cli -s "$RSOCK" --no-auth-warning -a s3cret-pw "$@"; }
wait_until 5 RS ping || fail "redis did not start"
ticker_config "$T" "event_store: redis_stream" "redis: {socket: $RSOCK, db: 3}"

export REDIS_PASSWORD=not-the-pw
start_agentd
wait_until 5 outbox_is pending -gt 5 \
	|| fail "events did not wait in the outbox"
ctl --json status | jget "d['outbox']['redis']" | grep -qx down || fail "status does not say down"
ctl --json status | jget "d['outbox']['last_error']" | grep -qi "AUTH" || fail "status does not say AUTH failed"
grep -qi "AUTH failed" "$T/agentd.log" || fail "the log does not say AUTH failed"
grep -q "not-the-pw" "$T/agentd.log" && fail "the password is in the log"
[ "$(RS -n 3 XLEN background_agent_events)" = 0 ] || fail "events landed without the password"
stop_agentd || fail "agentd did not stop"

export REDIS_PASSWORD=s3cret-pw
start_agentd
wait_until 10 sh -c "[ \$(redis-cli -s $RSOCK --no-auth-warning -a s3cret-pw -n 3 XLEN background_agent_events) -gt 5 ]" \
	|| fail "events did not reach database 3"
[ "$(RS -n 0 EXISTS background_agent_events)" = 0 ] || fail "events went to database 0"
grep -q "s3cret-pw" "$T/agentd.log" && fail "the password is in the log"
ctl --json status | jget "d['outbox']['redis']" | grep -qx up || fail "status does not say up"
note "unix socket, AUTH and SELECT 3: $(RS -n 3 XLEN background_agent_events) events"
exit 0
