# memory_store database with a postgresql:// database_url, against a real
# PostgreSQL (Debian's, initdb into the temp dir, run as the postgres user on
# a free loopback port): memory rows reach agentd_memory, trimmed to
# memory_retention; while PostgreSQL is down rows wait in the SQLite outbox
# and runs go on; they arrive once, in order, when it is back; a SIGKILLed
# agentd's outbox is shipped by the next one.
. ./lib.sh

use_pg || skip "no PostgreSQL server on this machine (scripts/bootstrap installs it)"
URL="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
Q() { psql "$URL" -tAq -c "$1" 2>/dev/null; }
pending() { ctl --json status | jget "d['postgresql']['memory_pending']"; }
drained() { [ "$(pending)" = 0 ]; }

pg_start
mkdir -p "$T/watched"
ticker_config "$T/watched" "memory_store: database" "database_url: \"$URL\"" "memory_retention: 5"
start_agentd
[ "$(ctl --json status ticker | jget "d['memory_store']")" = postgresql ] || fail "status does not name postgresql"
wait_until 15 sh -c "[ \"\$(psql '$URL' -tAq -c \"select count(*) from agentd_memory where agent='ticker' and memory_type='episodic'\" 2>/dev/null)\" = 5 ]" \
	|| fail "memory not in PostgreSQL, or not trimmed to 5: $(Q 'select count(*) from agentd_memory')"
Q "select role, metadata->>'tool', session_id from agentd_memory order by id desc limit 1" | grep -q "^assistant|new_files|background_ticker_" \
	|| fail "row fields: $(Q 'select * from agentd_memory order by id desc limit 1')"
note "rows land in agentd_memory, trimmed to memory_retention"

check_rows() {
	Q "select content from agentd_memory where agent='ticker' and memory_type='episodic' order by id" > "$T/pg.txt"
	ctl --json memory ticker -n 5 | jget "'\n'.join(m['content'] for m in d)" > "$T/local.txt"
	cmp -s "$T/pg.txt" "$T/local.txt" || fail "PostgreSQL differs from the local memory ($1): $(diff "$T/pg.txt" "$T/local.txt" | head -5)"
}
pg_kill
runs0=$(field ticker run_count)
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status ticker | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') -ge $((runs0 + 5)) ]" \
	|| fail "runs stopped while PostgreSQL was down"
[ "$(pending)" -gt 0 ] || fail "nothing waited in the outbox"
pgs() { ctl --json status | jget "d['postgresql']"; }
pgs | jget "d['postgresql']=='down' and bool(d['last_error']) and d['last_failure']['until'] is None" | grep -qx true ||
	fail "PostgreSQL down, status: $(pgs)"
pg_start
ctl pause ticker >/dev/null
wait_until 15 drained || fail "outbox not drained after PostgreSQL came back"
check_rows "after a PostgreSQL restart"
# what is wrong now is gone once it is back; the episode is kept
pgs | jget "d['postgresql']=='up' and d['last_error'] is None and bool(d['last_failure']['error']) and d['last_failure']['until'] >= d['last_failure']['at']" |
	grep -qx true || fail "PostgreSQL back, status: $(pgs)"
note "PostgreSQL killed and restarted: the newest rows, once each, in order; its error shown while down, kept as last_failure after"

pg_kill
ctl resume ticker >/dev/null
sleep 0.6
ctl pause ticker >/dev/null
[ "$(pending)" -gt 0 ] || fail "no pending rows before the SIGKILL"
kill_agentd
pg_start
start_agentd
ctl pause ticker >/dev/null
wait_until 15 drained || fail "the killed agentd's outbox was not shipped"
check_rows "after agentd was SIGKILLed"
[ "$(Q "select count(*) - count(distinct row_key) from agentd_memory")" = 0 ] || fail "duplicate rows"
note "a SIGKILLed agentd's outbox is shipped by the next one"
