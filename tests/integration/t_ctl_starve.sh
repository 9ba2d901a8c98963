# Out of file descriptors: agentd under `ulimit -n` with control clients
# held open until accept fails.  The listener must rest between tries (not
# wake the loop at once again: that spun at 80 % CPU and wrote ~500k log
# lines a second), the clients waiting meanwhile are told why, the repeats
# are logged once with a count, and agentd serves again once the clients go.
. ./lib.sh

{ header; cat <<YAML
  one:
    task_config: {tool: system_info}
YAML
} | write_config
# start_agentd, with the descriptor limit: ~15 are agentd's own, so some 25
# clients exhaust it (the client cap, 64, is not reached).
bash -c 'ulimit -n 40 && exec "$@"' - "$B/agentd" -c "$T/agents.yaml" > "$T/agentd.log" 2>&1 &
AGENTD_PID=$!
wait_until 10 ctl status || fail "agentd does not answer"
wait_until 10 all_idle || fail "worker not idle"

# Followers are never idle, so agentd has no reason to drop them.
mkfifo "$T/hold"
python3 ../ctlclient.py "$SOCK" hold 60 follow < "$T/hold" > "$T/held" &
HOLDER=$!
exec 7> "$T/hold"
at_exit 'exec 7>&-; kill $HOLDER'
wait_until 20 grep -q held "$T/held" || fail "the clients did not connect"
note "$(cat "$T/held") connections"
wait_until 20 grep -q "control socket accept: Too many open files" "$T/agentd.log" ||
	fail "accept never failed for want of descriptors"

cpu() { awk '{print $14 + $15}' "/proc/$AGENTD_PID/stat"; }
cpu0=$(cpu) lines0=$(wc -l < "$T/agentd.log") t0=$(date +%s%N)
# Clients keep coming while it is starved: each is told why, none hangs.
refused=0
for _ in 1 2 3 4 5; do
	timeout 10 "$B/agentctl" -s "$SOCK" status > /dev/null 2> "$T/ctl.err"
	rc=$?
	if [ $rc = 1 ] && grep -q "out of file descriptors" "$T/ctl.err"; then
		refused=$((refused + 1))
	fi
	sleep 0.5
done
cpu1=$(cpu) lines1=$(wc -l < "$T/agentd.log") t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
note "starved for $ms ms: $((cpu1 - cpu0)) ticks of CPU, $((lines1 - lines0)) log lines, $refused of 5 status calls refused with the reason"
# Generous: a loop that spins burns its whole share (hundreds of ticks in
# the seconds this took) and writes thousands of lines.
[ $((lines1 - lines0)) -lt 40 ] || fail "$((lines1 - lines0)) log lines while starved: $(tail -n 3 "$T/agentd.log")"
[ $((cpu1 - cpu0)) -lt $((ms / 20)) ] || fail "agentd burnt $((cpu1 - cpu0)) ticks in $ms ms while starved"
[ "$refused" -ge 1 ] || fail "no client was told that agentd is out of descriptors: $(cat "$T/ctl.err")"

# The clients go: agentd serves again, and says how often accept failed.
exec 7>&-
wait "$HOLDER" 2>/dev/null
wait_until 30 ctl status || fail "agentd does not serve again after the clients left"
wait_until 30 grep -q "control socket accept: Too many open files.*(repeated [0-9]* more times in 10 s)" "$T/agentd.log" ||
	fail "the repeats were never counted"
note "$(grep -o "repeated [0-9]* more times in 10 s" "$T/agentd.log" | head -n 1)"
exit 0
