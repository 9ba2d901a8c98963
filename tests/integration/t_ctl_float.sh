# Floats are written in the shortest form that reads back as the same
# double, wherever agentd turns JSON into text: the event payload as stored
# (the SQLite row, which the relay ships as is) and agentctl's output.
# jansson's own %.17g would say 1.5600000000000001.
. ./lib.sh

{ header; cat <<YAML
  sleeper:
    task_config: {tool: test_sleep, seconds: 0.56}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "worker not idle"
ctl run sleeper >/dev/null || fail "run refused"
wait_until 20 sh -c "[ \"\$($B/agentctl -s $SOCK --json status sleeper | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"last_success\"])')\" != None ]" ||
	fail "run did not complete"

ctl --json events sleeper > "$T/events.json"
grep -q '"slept_s": 0.56$' "$T/events.json" || fail "agentctl --json: $(grep slept_s "$T/events.json")"
grep -q '0.56000000000000005' "$T/events.json" && fail "a 17-digit float in agentctl --json"
ctl events sleeper | grep -q 'result={"slept_s":0.56}' || fail "agentctl events: $(ctl events sleeper | grep slept)"
row=$(python3 - "$T/state/agentd.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT payload FROM events WHERE type = 'background_task_completed'").fetchone()[0])
PY
)
note "stored: $row"
case $row in *'"result":{"slept_s":0.56}'*) ;; *) fail "stored payload: $row" ;; esac
exit 0
