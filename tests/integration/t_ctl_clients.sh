# The control socket's own bounds: at most 64 clients at once (one more is
# told why, and served again once some leave); a client that stops
# mid-frame is dropped after the idle timeout (10 s) instead of holding its
# buffer forever; a follower that sends nothing is not idle and stays.
. ./lib.sh

{ header; cat <<YAML
  one:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "worker not idle"

# A follower from the start: it must outlive every idle timeout below.
ctl events -f one > "$T/follow.out" 2> "$T/follow.err" &
FOLLOWER=$!
at_exit 'kill $FOLLOWER'

# Half of a 1 MiB request, then nothing: dropped with a reason.
timeout 120 python3 ../ctlclient.py "$SOCK" partial 1048576 > "$T/partial.out" &
PARTIAL=$!
wait_until 20 test -s "$T/follow.out" || fail "the follower did not start"
wait_until 20 grep -q sent "$T/partial.out" || fail "the half-sent client did not connect"

# The cap: 62 more followers fill it (64 with the follower and the
# half-sent client above; a 63rd was refused, and the race with that
# refusal's close decided whether it counted).
mkfifo "$T/hold"
python3 ../ctlclient.py "$SOCK" hold 62 follow < "$T/hold" > "$T/held" &
HOLDER=$!
exec 7> "$T/hold"
at_exit 'exec 7>&-; kill $HOLDER'
wait_until 20 grep -q held "$T/held" || fail "the clients did not connect"
wait_until 20 sh -c "! $B/agentctl -s $SOCK status > /dev/null 2> $T/cap.err" ||
	fail "a 65th client was served"
grep -q "agentd serves at most 64 control clients at once" "$T/cap.err" || fail "cap: $(cat "$T/cap.err")"
ctl status > /dev/null 2>&1; [ $? = 1 ] || fail "a refused client's exit code is not 1"
grep -q "control socket: 64 clients already" "$T/agentd.log" || fail "the refusal is not logged"
exec 7>&-
wait "$HOLDER" 2>/dev/null
wait_until 20 ctl status || fail "not served again once clients left"

wait "$PARTIAL" || fail "the half-sent client was not dropped: $(cat "$T/partial.out")"
grep -q "no complete request in time" "$T/partial.out" || fail "partial: $(cat "$T/partial.out")"
grep -q "control client sent no complete request within 10000 ms" "$T/agentd.log" ||
	fail "the idle drop is not logged"

# The follower, silent all along, still gets new events.
kill -0 $FOLLOWER 2>/dev/null || fail "the follower was dropped: $(cat "$T/follow.err")"
ctl run one > /dev/null || fail "run refused"
wait_until 20 grep -q background_task_completed "$T/follow.out" || fail "the follower got no new events"
exit 0
