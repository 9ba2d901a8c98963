# One agentd per state_dir: a second one, even with a control socket of
# its own, refuses at once and names the holder's pid, and runs nothing.
# The lock dies with its holder (a pid file left by a SIGKILLed agentd
# stops nobody), and no worker holds it.
. ./lib.sh

{ header; cat <<YAML
  ticker:
    task_config: {tool: system_info}
    interval: 100ms
YAML
} | write_config
sed "s|^agentd:|agentd:\n  control_socket: $T/second.sock|" "$T/agents.yaml" > "$T/second.yaml"
start_agentd
wait_until 5 state_is ticker idle || fail "ticker not idle"
first=$AGENTD_PID

# workers: processes running in the ticker's directory.
workers() { for p in /proc/[0-9]*; do
	[ "$(readlink "$p/cwd" 2>/dev/null)" = "$T/state/agents/ticker" ] && echo "$p"; done | wc -l; }
[ "$(workers)" = 1 ] || fail "expected one worker"

rc=0
timeout 10 "$B/agentd" -c "$T/second.yaml" > "$T/second.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "the second agentd exited $rc: $(cat "$T/second.log")"
grep -q "in use by another agentd, pid $first" "$T/second.log" || fail "the refusal does not name the holder: $(cat "$T/second.log")"
grep -q "$T/state/agentd.pid" "$T/second.log" || fail "the refusal does not name the lock file"
[ -e "$T/second.sock" ] && fail "the second agentd made its control socket"
[ "$(workers)" = 1 ] || fail "the second agentd started workers"
ctl status >/dev/null || fail "the first agentd was disturbed"
[ "$(cat "$T/state/agentd.pid")" = "$first" ] || fail "the pid file does not name the holder"

# No worker holds the lock file open.
wpid=$(field ticker pid)
ls -l "/proc/$wpid/fd" | grep -q agentd.pid && fail "the worker inherited the lock"

# A killed holder leaves its pid file, and no lock: the next one starts.
kill_agentd
[ -e "$T/state/agentd.pid" ] || fail "no pid file left to test with"
"$B/agentd" -c "$T/second.yaml" > "$T/agentd.log" 2>&1 &
AGENTD_PID=$!
wait_until 10 test -S "$T/second.sock" || fail "a stale pid file stopped agentd: $(cat "$T/agentd.log")"
[ "$(cat "$T/state/agentd.pid")" = "$AGENTD_PID" ] || fail "the pid file does not name the new holder"
# And a third one, started while it runs, is refused in turn.
rc=0
timeout 10 "$B/agentd" -c "$T/agents.yaml" > "$T/third.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "pid $AGENTD_PID" "$T/third.log" || fail "the third agentd was not refused ($rc): $(cat "$T/third.log")"
exit 0
