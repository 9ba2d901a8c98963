# A worker start the host has no room for -- agentd out of descriptors, so
# socketpair or pipe fails with EMFILE -- is not a crash: the agent waits
# (state `waiting`, the reason in status, a worker_start_failed event per
# attempt), tries again with the restart backoff, spends nothing of its
# crash budget, and starts once descriptors are free.  With just enough
# descriptors for the start itself, the worker's cgroup still gets its
# limits (they were written after the pipes, and silently left out when
# those took the last descriptors).
. ./lib.sh

{ header; cat <<YAML
  victim:
    task_config: {tool: system_info}
    restart: {policy: always, max_restarts: 1, window: 60s, backoff: 100ms, max_backoff: 300ms, stable_after: 0s}
    limits: {processes: 256}
YAML
} | write_config
start_agentd
wait_until 10 state_is victim idle || fail "victim not idle"

# limit_fds PID FREE: lower PID's open-file limit so that exactly FREE more
# descriptors fit (the lowest free numbers are what open(2) hands out).
limit_fds() {
	python3 - "$1" "$2" <<'PY'
import os, resource, sys
pid, free = int(sys.argv[1]), int(sys.argv[2])
used = {int(f) for f in os.listdir(f"/proc/{pid}/fd")}
lim, avail = 0, 0
while avail < free or lim in used:
    avail += lim not in used
    lim += 1
soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
resource.prlimit(pid, resource.RLIMIT_NOFILE, (lim, hard))
print(soft)
PY
}
old_pid=$(field victim pid)
# No descriptor to spare (and one to spare should a control connection
# still be closing): the crash frees the worker's two, a new one needs four.
orig=$(limit_fds "$AGENTD_PID" 0) || fail "cannot lower agentd's descriptor limit"
kill -9 "$old_pid"
wait_until 20 state_is victim waiting || fail "victim not waiting ($(field victim state))"
field victim last_error | grep -q "Too many open files" || fail "no reason in status: $(field victim last_error)"
field victim last_error | grep -q "short of resources" || fail "the reason does not say why it waits: $(field victim last_error)"
wait_until 20 sh -c "[ \$($B/agentctl -s $SOCK --json events -n 1000 victim | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"]==\"worker_start_failed\"]))') -ge 4 ]" ||
	fail "no repeated start attempts"
events_json victim | jget "[e['payload'] for e in d if e['type']=='worker_start_failed'][-1]" |
	jget "'Too many open files' in d['reason'] and d['delay_ms'] <= 300" | grep -qx true || fail "worker_start_failed payload"
[ "$(field victim state)" = waiting ] || fail "gave up waiting: $(field victim state)"
[ "$(field victim restart_count)" = 1 ] || fail "failed starts counted as restarts: $(field victim restart_count)"
[ "$(count_events victim worker_fatal)" = 0 ] || fail "a start short of descriptors made the agent fatal"
note "victim waited: $(field victim last_error)"

prlimit --pid "$AGENTD_PID" --nofile="$orig": || fail "cannot restore the limit"
wait_until 20 state_is victim idle || fail "victim did not start once descriptors were free ($(field victim state))"
[ "$(field victim pid)" != "$old_pid" ] || fail "no new worker"
[ "$(field victim restart_count)" = 1 ] || fail "restart budget touched: $(field victim restart_count)"
[ "$(field victim last_error)" = null ] || fail "the reason outlived the wait: $(field victim last_error)"
ctl run victim >/dev/null || fail "run after the wait"
wait_until 10 sh -c "[ \$($B/agentctl -s $SOCK --json status victim | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"run_count\"])') = 1 ]" || fail "no run after the wait"

# Exactly the four descriptors a start takes (socketpair, pipe) once the
# old worker's two are closed (two free now, enough for the control
# connection asking for the restart): the cgroup's limit files are written
# before the pipes take them, so the worker is limited.
if ! grep -q "cgroups: v[12]" "$T/agentd.log"; then
	note "no cgroups here: the cgroup half is not checked"
	exit 0
fi
old_pid=$(field victim pid)
limit_fds "$AGENTD_PID" 2 >/dev/null || fail "cannot lower agentd's descriptor limit"
ctl restart victim >/dev/null || fail "restart refused"
wait_until 20 sh -c "[ \"\$($B/agentctl -s $SOCK --json status victim | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"state\"], d[\"pid\"])')\" != \"idle $old_pid\" ] && $B/agentctl -s $SOCK --json status victim | grep -q '\"state\": \"idle\"'" ||
	fail "victim did not come back ($(field victim state): $(field victim last_error))"
prlimit --pid "$AGENTD_PID" --nofile="$orig": || fail "cannot restore the limit"
pid=$(field victim pid)
cg=$(awk -F: '$2 ~ /pids/ {print $3}' "/proc/$pid/cgroup")
[ -n "$cg" ] || cg=$(awk -F: '$1 == 0 {print $3}' "/proc/$pid/cgroup")
max=$(cat "/sys/fs/cgroup/pids$cg/pids.max" 2>/dev/null || cat "/sys/fs/cgroup$cg/pids.max")
[ "$max" = 256 ] || fail "the worker's cgroup ($cg) has pids.max $max, not 256"
exit 0
