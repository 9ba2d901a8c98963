# `agentctl events -f` ends with exit 4 and a reason on stderr when agentd
# drops it (a follower that does not keep up) or stops: never 0, so a
# script can tell that its stream ended early.
. ./lib.sh

{ header; cat <<YAML
  emitter:
    task_config: {tool: test_emit, count: 200000}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 10 all_idle || fail "worker not idle"

# A follower whose output nobody reads: its pipe fills, then agentd's
# queue for it (8 MiB), and agentd drops it.
mkfifo "$T/slow"
exec 8<> "$T/slow"
ctl events -f > "$T/slow" 2> "$T/slow.err" &
SLOW=$!
at_exit 'kill $SLOW'
read -r -t 10 line <&8 || fail "the follower printed nothing"	# its first page: subscribed
ctl run emitter > /dev/null || fail "run refused"
wait_until 60 grep -q "control client does not read its socket" "$T/agentd.log" ||
	fail "the slow follower was never dropped"
cat <&8 > /dev/null &
DRAIN=$!
at_exit 'kill $DRAIN'
wait $SLOW
rc=$?
[ $rc = 4 ] || fail "a dropped follower exits $rc"
grep -q "agentd closed the connection" "$T/slow.err" || fail "no reason: $(cat "$T/slow.err")"
note "dropped: exit $rc, $(cat "$T/slow.err")"

# agentd stops under a follower.
wait_until 60 state_is emitter idle || fail "the emitter did not finish"
ctl events -f -n 1 > "$T/follow.out" 2> "$T/follow.err" &
FOLLOWER=$!
wait_until 10 test -s "$T/follow.out" || fail "the follower printed nothing"
stop_agentd || fail "agentd exit code $?"
wait $FOLLOWER
rc=$?
[ $rc = 4 ] || fail "a follower of a stopped agentd exits $rc"
grep -q "agentd closed the connection" "$T/follow.err" || fail "no reason: $(cat "$T/follow.err")"
exit 0
