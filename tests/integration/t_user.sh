# user and group: the worker runs as the agent's user and group with no
# supplementary groups, in a directory it owns, and its tools work there
# (a command tool, new_files' watermark) although the state_dir above it is
# 0700 root's.  Needs root, as starting a process as another user does.
. ./lib.sh
[ "$(id -u)" = 0 ] || skip "needs root to start a worker as another user"
getent passwd nobody >/dev/null && getent group nogroup >/dev/null || skip "no user nobody or group nogroup"

# The worker binary where nobody can reach it (the build may sit in a
# home directory only its owner may enter).
chmod 711 "$T"
mkdir -p "$T/bin" && cp "$B/agentd-worker" "$T/bin/" && chmod 755 "$T/bin"
{ header | sed "s|^agentd:|agentd:\n  worker_path: $T/bin/agentd-worker|"; cat <<YAML
  dropped:
    task_config: {tool: system_info}
    user: nobody
    group: nogroup
  tooled:
    task_config: {tool: where}
    local_tools:
      - name: where
        description: "the tool's directory and user"
        command: ["/bin/sh", "-c", "pwd; id -un"]
    user: nobody
    group: nogroup
  watcher:
    task_config: {tool: new_files, directories: ["$T/watched"]}
    user: nobody
    group: nogroup
YAML
} | write_config
# agentd with a supplementary group of its own, which the worker must not keep.
AGENTD_WRAP="setpriv --groups 4242 --" start_agentd
wait_until 10 all_idle || fail "the worker did not come up as nobody: $(field dropped last_error)"
pid=$(field dropped pid)
uid=$(id -u nobody) gid=$(getent group nogroup | cut -d: -f3)
ids=$(awk '/^(Uid|Gid|Groups):/ {$1 = $1; print}' "/proc/$pid/status")
[ "$ids" = "$(printf 'Uid: %s %s %s %s\nGid: %s %s %s %s\nGroups:' $uid $uid $uid $uid $gid $gid $gid $gid)" ] ||
	fail "the worker's identity: $ids"
[ "$(stat -c %U:%G "$T/state/agents/dropped")" = nobody:nogroup ] || fail "its directory is not its own"
ctl run dropped >/dev/null
wait_until 10 sh -c "[ \"\$($B/agentctl -s $SOCK --json status dropped | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"last_success\"])')\" != None ]" ||
	fail "the run did not complete: $(field dropped last_error)"
# A command tool runs in the agent's directory as the agent's user (it got
# "exited with code 126" with no reason when it tried the absolute path).
ctl run tooled >/dev/null
wait_until 10 sh -c "$B/agentctl -s $SOCK --json events -n 50 tooled | grep -q background_task_completed" ||
	fail "the command tool did not run as nobody: $(field tooled last_error)"
out=$(events_json tooled | jget "[e for e in d if e['type']=='background_task_completed'][-1]['payload']['result']['output']")
[ "$out" = "$(printf '%s\nnobody\n' "$T/state/agents/tooled")" ] || fail "the command tool's directory and user: $out"
# new_files keeps its watermark in the agent's directory: a second run sees
# nothing new.
mkdir -p "$T/watched" && chmod 755 "$T/watched" && echo x > "$T/watched/a.txt" && chmod 644 "$T/watched/a.txt"
ctl run watcher >/dev/null
wait_until 10 test -f "$T/state/agents/watcher/new_files.state" ||
	fail "new_files kept no watermark as nobody: $(field watcher last_error)"
exit 0
