# event_retention is fair by agent: an agent that floods the log (3000
# events into a log of 200) takes the room the others leave, never their
# own events, in the SQLite log and in the in-memory one.
. ./lib.sh

for backend in database memory; do
	{ header; cat <<YAML
  quiet:
    task_config: {tool: system_info}
  flood:
    task_config: {tool: test_emit, args: {count: 3000}}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
	} | sed "s|^agentd:|agentd:\n  event_store: $backend\n  event_retention: 200|" | write_config
	rm -rf "$T/state"
	start_agentd
	wait_until 10 all_idle || fail "$backend: workers not idle"
	ctl run quiet >/dev/null
	wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status quiet | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"is_running\"])') = False ]" || fail "$backend: quiet run"
	before=$(events_json quiet | jget "[e['seq'] for e in d]")
	for i in 1 2; do
		ctl run flood >/dev/null
		wait_until 60 sh -c "[ \$($B/agentctl -s $SOCK --json status flood | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"run_count\"] == $i and not d[\"is_running\"])') = True ]" ||
			fail "$backend: flood run $i"
	done
	after=$(events_json quiet | jget "[e['seq'] for e in d]")
	[ "$after" = "$before" ] || fail "$backend: the flood took the quiet agent's events: $before -> $after"
	total=$(events_json | jget "len(d)")
	flood=$(events_json flood | jget "len(d)")
	[ "$total" -le 200 ] || fail "$backend: the log holds $total events, over event_retention"
	[ "$total" -ge 190 ] || fail "$backend: the log holds only $total: retention took more than it had to"
	[ "$(ctl --json status | jget "d['events_dropped']")" -gt 5000 ] || fail "$backend: retention drops not counted"
	note "$backend: quiet kept $(echo "$after" | jget 'len(d)') events, flood $flood of 6000+, total $total"
	stop_agentd || fail "$backend: agentd did not stop cleanly"
done
exit 0
