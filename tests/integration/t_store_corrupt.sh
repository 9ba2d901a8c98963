# A state db with a damaged page, or one that is not a database at all, is
# refused at start: exit 1, the file named with what to do, and the file
# left exactly as it was -- never "starting fresh" over it (which reset
# every counter and session id, then failed on every event).
. ./lib.sh

{ header; cat <<YAML
  counter:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
wait_until 10 state_is counter idle || fail "counter not idle"
ctl run counter >/dev/null
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status counter | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"run_count\"])') = 1 ]" || fail "no run"
stop_agentd || fail "agentd did not stop cleanly"
DB=$T/state/agentd.db
cp "$DB" "$T/good.db"

# corrupt TABLE: the first page of that table's b-tree overwritten with junk.
corrupt() {
	cp "$T/good.db" "$DB"
	rm -f "$DB-wal" "$DB-shm"
	python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db, table = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
page = c.execute("PRAGMA page_size").fetchone()[0]
root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
c.close()
with open(db, "r+b") as f:
    f.seek((root - 1) * page)
    f.write(bytes((i * 37 + 11) % 256 for i in range(page)))
PY
	cp "$DB" "$T/damaged.db"
}
refused() { # what: agentd refuses the db, names it, and leaves it as it was
	rc=0
	timeout 20 "$B/agentd" -c "$T/agents.yaml" > "$T/refused.log" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "$1: agentd exited $rc: $(tail -n 5 "$T/refused.log")"
	grep -q "$DB is damaged" "$T/refused.log" || fail "$1: the file is not named as damaged: $(tail -n 5 "$T/refused.log")"
	grep -q "restore it from a backup, or move it aside" "$T/refused.log" || fail "$1: no word on what to do"
	cmp -s "$DB" "$T/damaged.db" || fail "$1: agentd wrote into the damaged db"
	[ -S "$SOCK" ] && fail "$1: agentd made its socket"
	grep -q "worker spawned" "$T/refused.log" && fail "$1: agentd started workers"
	note "$1: $(grep -o 'is damaged ([^)]*)' "$T/refused.log" | head -n 1)"
}
corrupt events;      refused "a damaged page of the event log"
corrupt agent_state; refused "a damaged page of the agent state"
cp "$T/good.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
head -c 8192 /dev/urandom | tr -d '\0' > "$DB"; cp "$DB" "$T/damaged.db"
refused "a file that is not a database"

# The good copy back: everything as it was.
cp "$T/good.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
start_agentd
wait_until 10 state_is counter idle || fail "counter not idle on the good db"
[ "$(field counter run_count)" = 1 ] || fail "state not kept"
exit 0
