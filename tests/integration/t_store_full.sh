# A full disk under state_dir loses nothing silently.  On a small tmpfs,
# filled by a file of the test's: status says the store is degraded, with
# the error and what waits; the writes wait in memory and are retried on a
# timer (not every loop pass); past the pending bound (10000 events) the
# newest are dropped and told as events_dropped; once the file is gone
# everything kept is committed.  Every event is accounted for, stored or
# inside an events_dropped range, and the saved state agrees with the log.
. ./lib.sh

[ "$(id -u)" = 0 ] || skip "needs root: mounts a small tmpfs as state_dir"
mkdir -p "$T/state"
mount -t tmpfs -o size=16m tmpfs "$T/state" || skip "cannot mount a tmpfs here"
at_exit "umount -l $T/state"

{ header; cat <<YAML
  ticker:
    task_config: {tool: system_info}
    interval: 200ms
  flood:
    task_config: {tool: test_emit, args: {count: 4000}}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "workers not idle"
store() { ctl --json status | jget "d['store']['$1']"; }
store_is() { local v; v=$(store "$1") && [ "$v" "$2" "$3" ]; }
[ "$(store state)" = ok ] || fail "store not ok at start"

dd if=/dev/zero of="$T/state/fill" bs=64k 2>/dev/null
note "state_dir full: $(df -h "$T/state" | tail -n 1)"
ctl run flood >/dev/null || fail "run flood"
wait_until 60 sh -c "[ \"\$($B/agentctl -s $SOCK --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"store\"][\"state\"])')\" = degraded ]" ||
	fail "the store does not say it is degraded"
store error | grep -qi "full" || fail "status does not say why: $(store error)"
wait_until 60 store_is pending_events -ge 4000 || fail "the events do not wait: $(store pending_events)"
ctl --json status | jget "d['store']" > "$T/degraded.json"
note "degraded: $(cat "$T/degraded.json")"
ctl status | grep -q "^store: degraded since .*full.* wait in memory" || fail "the status table does not say it: $(ctl status | tail -n 1)"
# Past the bound: newer events are dropped, and counted.
for i in 1 2; do
	wait_until 30 sh -c "[ \$($B/agentctl -s $SOCK --json status flood | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"is_running\"])') = False ]"
	ctl run flood >/dev/null || fail "run flood again"
done
wait_until 60 store_is dropped_events -gt 0 || fail "nothing counted as dropped past the bound"
[ "$(store pending_events)" -le 10000 ] || fail "more than the bound waits: $(store pending_events)"
[ "$(store state)" = degraded ] || fail "recovered with the disk still full"

rm -f "$T/state/fill"
wait_until 90 store_is state = ok || fail "not committed once space was back: $(ctl --json status | jget "d['store']")"
wait_until 30 sh -c "[ \$($B/agentctl -s $SOCK --json events -n 100000 flood | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"]==\"events_dropped\"]))') -ge 1 ]" ||
	fail "no events_dropped event"
retries=$(grep -c "store: still failing" "$T/agentd.log")
note "retries while degraded: $retries"
[ "$retries" -le 12 ] || fail "the commit was retried $retries times: not on a backoff"

# Every event, stored or told: for each agent the stored seqs and the
# events_dropped ranges cover 1..N exactly once.
stop_agentd || fail "agentd did not stop cleanly"
python3 - "$T/state/agentd.db" <<'PY' || fail "events not accounted for"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for agent in ("ticker", "flood"):
    seqs = [r[0] for r in db.execute("SELECT seq FROM events WHERE agent_name = ? ORDER BY seq", (agent,))]
    told = []
    for (p,) in db.execute("SELECT payload FROM events WHERE agent_name = ? AND type = 'events_dropped'", (agent,)):
        d = json.loads(p)
        told += list(range(d["first_seq"], d["last_seq"] + 1))
        assert d["dropped"] == d["last_seq"] - d["first_seq"] + 1, d
    every = sorted(seqs + told)
    assert every == list(range(1, len(every) + 1)), (agent, "gaps or repeats")
    state_seq = db.execute("SELECT seq FROM agent_state WHERE agent = ?", (agent,)).fetchone()[0]
    assert state_seq == every[-1], (agent, "state seq", state_seq, "last", every[-1])
    print(f"  - {agent}: {len(seqs)} events stored, {len(told)} told as dropped, state seq {state_seq}")
PY
exit 0
