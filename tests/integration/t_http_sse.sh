# GET /v1/events/stream: Server-Sent Events with id: the event's id, so a
# client that reconnects with Last-Event-ID gets everything after it --
# nothing lost, nothing twice -- after a dropped connection, across a
# graceful restart of agentd and across a SIGKILL (events sent only once
# committed, so no id a client saw is ever given to another event).
# Filters as the listing's; an idle stream costs agentd no wake-up.
. ./lib.sh

HC="python3 ../httpclient.py"
{ header; cat <<YAML
  emitter:
    task_config: {tool: test_emit, count: 300, rate: 150}
    env: {AGENTD_TEST_HOOKS: "1"}
  quiet:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "workers not idle"
stream() {	# stream OUT [httpclient args]: agent emitter's events into OUT
	local out=$1; shift
	$HC "unix:$HTTP_SOCK" stream "/v1/events/stream?agent=emitter&after=0" "$@" >> "$out" 2> "$out.err"
}
last_id() { tail -n 1 "$1" | cut -d' ' -f1; }
lines() { cat "$1" 2>/dev/null | wc -l; }
has_lines() { [ "$(lines "$1")" -ge "$2" ]; }

ctl run emitter > /dev/null || fail "run refused"
# A stream read 80 events, then dropped; the next resumes after the last.
stream "$T/s1" --max 80 || fail "stream 1: $(cat "$T/s1.err")"
[ "$(lines "$T/s1")" = 80 ] || fail "stream 1 read $(lines "$T/s1")"
stream "$T/s2" --max 80 --last-event-id "$(last_id "$T/s1")" || fail "stream 2: $(cat "$T/s2.err")"
# A third follows live; agentd is SIGKILLed under it, mid-run.
stream "$T/s3" --last-event-id "$(last_id "$T/s2")" &
S3=$!
at_exit 'kill $S3'
wait_until 30 has_lines "$T/s3" 20 || fail "stream 3 got nothing live"
kill_agentd
wait $S3
[ $? = 3 ] || fail "stream 3 did not see agentd go"
start_agentd
ctl run emitter > /dev/null || fail "run refused after the restart"
# A fourth resumes across the SIGKILL; agentd is then stopped (TERM) under it.
stream "$T/s4" --last-event-id "$(last_id "$T/s3")" &
S4=$!
at_exit 'kill $S4'
wait_until 60 state_is emitter idle || fail "the second run did not end"
wait_until 30 has_lines "$T/s4" 1 || fail "stream 4 got nothing"
sleep 0.5
stop_agentd || fail "agentd exit code $?"
wait $S4
start_agentd
ctl run emitter > /dev/null || fail "run refused after the second restart"
third_run() { [ "$(field emitter run_count)" = 3 ]; }
wait_until 60 third_run || fail "no third run"
wait_until 60 state_is emitter idle || fail "the third run did not end"
want=$(ctl --json events -n 100000 emitter | jget "[e['id'] for e in d]")
n=$(echo "$want" | jget "len(d)")
have=$(( $(lines "$T/s1") + $(lines "$T/s2") + $(lines "$T/s3") + $(lines "$T/s4") ))
stream "$T/s5" --last-event-id "$(last_id "$T/s4")" --max $((n - have)) || fail "stream 5: $(cat "$T/s5.err")"
got=$(cat "$T/s1" "$T/s2" "$T/s3" "$T/s4" "$T/s5" | cut -d' ' -f1 |
	python3 -c 'import json,sys; print(json.dumps([int(x) for x in sys.stdin.read().split()]))')
[ "$got" = "$want" ] || fail "the streams' ids are not the log's: $(echo "$got" | jget 'len(d)') sent, $n stored;
  missing $(python3 -c "import json; g=json.loads('$got'); w=json.loads('$want'); print(sorted(set(w)-set(g))[:20])"),
  repeated $(python3 -c "import json,collections; g=json.loads('$got'); print([k for k,c in collections.Counter(g).items() if c>1][:20])")"
note "$n events in 5 streams, 2 restarts (one SIGKILL): none lost, none twice"
# What each line carries is the stored event.
head -n 1 "$T/s1" | cut -d' ' -f2- | jget "d['agent_name'] == 'emitter' and d['id'] == $(head -n 1 "$T/s1" | cut -d' ' -f1)" |
	grep -qx true || fail "a stream's data: $(head -n 1 "$T/s1")"

# Filters: one type, one session; other agents' events are not sent.
ctl run quiet > /dev/null
quiet_ran() { [ "$(count_events quiet background_task_completed)" -ge 1 ]; }
wait_until 20 quiet_ran || fail "quiet did not run"
done=$(events_json | jget "len([e for e in d if e['type'] == 'background_task_completed'])")
$HC "unix:$HTTP_SOCK" stream "/v1/events/stream?after=0&type=background_task_completed" --max "$done" > "$T/f1" ||
	fail "type filter: $(cat "$T/f1")"
cut -d' ' -f2- "$T/f1" | python3 -c 'import json,sys; assert all(json.loads(l)["type"] == "background_task_completed" for l in sys.stdin)' ||
	fail "type filter let through: $(cat "$T/f1")"
sid=$(field quiet session_id)
$HC "unix:$HTTP_SOCK" stream "/v1/events/stream?after=0&session_id=$sid" --max 1 > "$T/f2" || fail "session filter"
cut -d' ' -f2- "$T/f2" | jget "d['agent_name'] == 'quiet' and d['payload']['session_id'] == '$sid'" | grep -qx true ||
	fail "session filter let through: $(cat "$T/f2")"
[ "$(hcode '/v1/events/stream?after=x')" = 400 ] || fail "a bad after: $(hbody)"
[ "$(hcode -H 'Last-Event-ID: soon' /v1/events/stream)" = 400 ] || fail "a bad Last-Event-ID: $(hbody)"

# A stream that waits for events makes agentd wake for nothing.
$HC "unix:$HTTP_SOCK" stream "/v1/events/stream?agent=quiet" --comments > "$T/idle" &
IDLE=$!
at_exit 'kill $IDLE'
sleep 1
switches() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$AGENTD_PID/status"; }
before=$(switches)
sleep 3
after=$(switches)
[ "$before" = "$after" ] || fail "agentd woke $((after - before)) times in 3 s with an idle stream"
# ... and it still gets what comes, when it comes: not with the next
# keep-alive (every 15 s; the run takes milliseconds).
seen=$(lines "$T/idle")
ctl run quiet > /dev/null
wait_until 20 grep -q background_task_completed "$T/idle" || fail "the idle stream missed the next run"
tail -n +$((seen + 1)) "$T/idle" | head -n 1 | grep -q "^# keep-alive" &&
	fail "the run's events came only with a keep-alive: $(cat "$T/idle")"
exit 0
