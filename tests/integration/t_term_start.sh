# SIGTERM while agentd starts and its workers come up is a graceful stop
# like any other: exit 0, every worker asked to exit and exiting 0, none
# SIGKILLed, nothing called a fault.  The signal goes the moment agentd
# has blocked it (its first act, before the config is read), then a few
# milliseconds later, so it lands while the store opens and while the
# workers are between spawn and `ready`.
. ./lib.sh

{ header; for i in 1 2 3 4 5 6; do cat <<YAML
  a$i:
    task_config: {tool: system_info}
    run_on_start: true
YAML
done; } | write_config

# blocked PID: agentd has SIGTERM (signal 15, bit 0x4000) blocked -- agentd
# itself, not the shell's child before its exec (whose mask says nothing).
blocked() {
	[ "$(readlink "/proc/$1/exe")" = "$(readlink -f "$B/agentd")" ] &&
		[ $(( 0x$(awk '/^SigBlk/ {print $2}' "/proc/$1/status") & 0x4000 )) != 0 ]
}

# Held before its store is open: agentd's log file is a FIFO nobody reads
# yet, so it waits in open(2) after reading its config.  SIGTERM then, and
# only then the reader: the signal must wait for the loop, not kill it.
mkfifo "$T/log.fifo"
cp "$T/agents.yaml" "$T/plain.yaml"
sed -i "s|^agentd:|agentd:\n  log_file: $T/log.fifo|" "$T/agents.yaml"
"$B/agentd" -c "$T/agents.yaml" > "$T/agentd.out" 2>&1 &
AGENTD_PID=$!
wait_until 10 blocked "$AGENTD_PID" || fail "agentd does not block SIGTERM before it opens its log"
kill -TERM "$AGENTD_PID"
cat "$T/log.fifo" > "$T/agentd.log" &
rc=0
wait "$AGENTD_PID" || rc=$?
AGENTD_PID=
wait
[ "$rc" = 0 ] || fail "SIGTERM before the store was open: exit $rc"
grep -q "agentd stopped" "$T/agentd.log" || fail "no clean end after an early SIGTERM"
# Every worker was spawned with the stop already waiting for the loop.
early=$(grep -c "asked to stop before it was ready" "$T/agentd.log")
cp "$T/plain.yaml" "$T/agents.yaml"
for delay in 0 0 0.002 0.005 0.01 0.02 0.05; do
	"$B/agentd" -c "$T/agents.yaml" > "$T/agentd.log" 2>&1 &
	AGENTD_PID=$!
	wait_until 10 blocked "$AGENTD_PID" || fail "agentd never blocked SIGTERM"
	sleep "$delay"
	kill -TERM "$AGENTD_PID"
	rc=0
	wait "$AGENTD_PID" || rc=$?
	AGENTD_PID=
	cat "$T/agentd.log" >> "$T/all.log"
	[ "$rc" = 0 ] || fail "SIGTERM ${delay}s after start: exit $rc"
	grep -E "SIGKILL|fault|ready sent twice|killed by signal" "$T/agentd.log" &&
		fail "SIGTERM ${delay}s after start was not a graceful stop"
	grep -q "agentd stopped" "$T/agentd.log" || fail "no clean end after SIGTERM ${delay}s after start"
	n=$(grep -c "asked to stop before it was ready" "$T/agentd.log")
	early=$((early + n))
done
# The window itself was hit: some worker got the stop before its ready.
[ "$early" -gt 0 ] || fail "no SIGTERM arrived while a worker was starting"
note "workers stopped before they were ready: $early"
exit 0
