# One set of bounds, checked where a control request enters, so nothing
# accepted fails later: a run's kwargs over VALUE_DEPTH_MAX (24) or
# KWARGS_MAX (256 KiB) is refused with the reason and code 2; what is
# accepted can be listed and followed.  `events -n` pages: any N works, by
# bytes, however large the events (here ~7 MB of them, a frame is 4 MiB).
. ./lib.sh

{ header; cat <<YAML
  one:
    task_config: {tool: test_sleep, seconds: 0}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "worker not idle"
ctl events -f > "$T/follow.out" 2> "$T/follow.err" &
FOLLOWER=$!
at_exit 'kill $FOLLOWER'

req() { printf '%s' "$1" | python3 ../ctlclient.py "$SOCK" request -; }
deep() { python3 -c "import json,sys; n=int(sys.argv[1]); v=1
for _ in range(n-1): v=[v]
print(json.dumps({'cmd':'run','agent':'one','args':{'kwargs':{'deep':v}}}))" "$1"; }
refused() {	# refused REQUEST WHY: code 2 with that reason
	local r; r=$(req "$1")
	echo "$r" | jget "d['ok'] is False and d['code'] == 2 and '''$2''' in d['error']" | grep -qx true ||
		fail "not refused with \"$2\": $(echo "$r" | cut -c1-300)"
}
refused "$(deep 30)" "args.kwargs nests more than 24 levels deep"
refused "$(deep 25)" "args.kwargs nests more than 24 levels deep"
big=$(python3 -c "import json; print(json.dumps({'cmd':'run','agent':'one','args':{'kwargs':{'pad':'x'*300000}}}))")
refused "$big" "args.kwargs is 300010 bytes as JSON, over the limit of 262144"
refused '{"cmd":"run","agent":"one","args":{"kwargs":[1]}}' "args.kwargs must be a map"
refused '{"cmd":"run","agent":"one","args":[]}' "field args must be obj"
refused '{"cmd":"events","args":{"limit":"all"}}' "args.limit must be an integer"
refused '{"cmd":"events","args":{"limit":0}}' "args.limit must be from 1 to"
refused '{"cmd":"memory","agent":"one","args":{"limit":10001}}' "args.limit must be from 1 to 10000"
[ "$(field one run_count)" = 0 ] || fail "a refused run ran"
note "kwargs 30 and 25 deep, 300 kB, not a map: refused with the reason"

# The largest accepted is stored, listed and followed like any other.
runs=0
run_with() {	# run_with REQUEST: accepted, and completed
	req "$1" | jget "d['ok']" | grep -qx true || fail "run refused: $(req "$1" | cut -c1-200)"
	runs=$((runs + 1))
	wait_until 20 sh -c "[ \"\$($B/agentctl -s $SOCK --json status one | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d[\"run_count\"], d[\"state\"])')\" = '$runs idle' ]" ||
		fail "run $runs did not complete"
}
run_with "$(deep 24)"
ctl events -n 100 > /dev/null || fail "events -n 100 after a 24-deep run: exit $?"
# 30 runs of 240 kB kwargs: their started events are ~7 MB.
pad=$(python3 -c "import json; print(json.dumps({'cmd':'run','agent':'one','args':{'kwargs':{'pad':'x'*240000}}}))")
for _ in $(seq 30); do run_with "$pad"; done
total=$(sqlite3 "$T/state/agentd.db" "SELECT count(*) FROM events")
ctl --json events -n 100000 > "$T/all.json" || fail "events -n 100000: exit $?"
jget "len(d)" < "$T/all.json" | grep -qx "$total" || fail "events -n 100000 gave $(jget "len(d)" < "$T/all.json") of $total"
jget "[e['id'] for e in d] == sorted(set(e['id'] for e in d))" < "$T/all.json" | grep -qx true ||
	fail "pages overlap or are out of order"
jget "len([e for e in d if e['type'] == 'background_task_started' and len(e['payload']['kwargs'].get('pad', '')) == 240000])" \
	< "$T/all.json" | grep -qx 30 || fail "a large event is missing or cut"
note "events -n 100000: all $total events, $(wc -c < "$T/all.json") bytes of JSON"
ctl events -n 100000 | wc -l | grep -qx "$total" || fail "the table lacks events"
newest=$(sqlite3 "$T/state/agentd.db" "SELECT group_concat(id) FROM (SELECT id FROM events ORDER BY id DESC LIMIT 7)")
ctl --json events -n 7 | jget "','.join(str(e['id']) for e in reversed(d))" | grep -qx "$newest" || fail "events -n 7 is not the newest 7"
ctl --json events -n 3 one | jget "len(d)" | grep -qx 3 || fail "events -n 3 AGENT"

# The follower saw every one of them and was never dropped.
kill -0 $FOLLOWER 2>/dev/null || fail "the follower was dropped: $(cat "$T/follow.err")"
wait_until 20 sh -c "[ \$(grep -c background_task_completed $T/follow.out) = $runs ]" ||
	fail "the follower saw $(grep -c background_task_completed "$T/follow.out") of $runs runs"
exit 0
