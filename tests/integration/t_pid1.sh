# agentd as PID 1 in a fresh PID namespace: orphaned grandchildren of a
# worker are reaped (no zombies), TERM stops it cleanly with exit 0.
. ./lib.sh
command -v unshare >/dev/null || fail "unshare (util-linux) missing"

# The worker forks a detached grandchild that outlives it briefly.
cat > "$T/wrapper" <<SH
#!/bin/sh
( setsid sh -c 'sleep 0.3' & )
exec $B/agentd-worker "\$@"
SH
chmod +x "$T/wrapper"
{ header; cat <<YAML
  parent:
    task_config: {tool: system_info}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  worker_path: $T/wrapper|" "$T/agents.yaml"

unshare --pid --fork --mount-proc "$B/agentd" -c "$T/agents.yaml" > "$T/agentd.log" 2>&1 &
UNSHARE=$!
wait_until 10 test -S "$SOCK" || fail "agentd did not start as PID 1"
AGENTD_PID=$(pgrep -P "$UNSHARE" -x agentd)
[ -n "$AGENTD_PID" ] || fail "no agentd under unshare"
grep -q "^NSpid:.*[[:space:]]1$" "/proc/$AGENTD_PID/status" || fail "agentd is not PID 1 in its namespace"
wait_until 5 all_idle || fail "worker not idle"
# Restart the worker a few times: each start leaves an orphan behind.
for i in 1 2 3; do
	ctl restart parent >/dev/null
	wait_until 10 all_idle || fail "worker not back after restart $i"
done
reaped() { [ "$(grep -c "reaped orphan" "$T/agentd.log")" -ge 4 ]; }
wait_until 10 reaped || fail "$(grep -c "reaped orphan" "$T/agentd.log") of the 4 orphans reaped"
zombies=$(ps -eo stat=,ppid= | awk -v p="$AGENTD_PID" '$1 ~ /^Z/ && $2 == p' | wc -l)
[ "$zombies" = 0 ] || fail "$zombies zombies under agentd as PID 1"
kill -TERM "$AGENTD_PID"
wait "$UNSHARE"; rc=$?
AGENTD_PID=
[ $rc = 0 ] || fail "PID 1 agentd exit code $rc"
exit 0
