# A state_dir agentd cannot write is refused at start, by name and reason,
# with exit status 1: a read-only file system (EROFS), and a directory
# agentd's user may not write (EACCES).
. ./lib.sh

[ "$(id -u)" = 0 ] || skip "needs root: mounts a read-only tmpfs and runs agentd as nobody"
mkdir -p "$T/ro"
mount -t tmpfs -o ro,size=1m tmpfs "$T/ro" || skip "cannot mount a tmpfs here"
at_exit "umount -l $T/ro"

{ header; cat <<YAML
  ticker:
    task_config: {tool: system_info}
YAML
} | sed "s|state_dir: .*|state_dir: $T/ro|" | write_config
rc=0
timeout 10 "$B/agentd" -c "$T/agents.yaml" > "$T/ro.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "read-only state_dir: exit $rc: $(cat "$T/ro.log")"
grep -q "state_dir $T/ro is not writable" "$T/ro.log" || fail "the directory is not named: $(cat "$T/ro.log")"
grep -q "Read-only file system" "$T/ro.log" || fail "the reason is not given: $(cat "$T/ro.log")"

# A directory that exists but is root's, for an agentd running as nobody.
mkdir -m 0755 "$T/rootdir"
sed "s|state_dir: .*|state_dir: $T/rootdir\n  control_socket: $T/nobody.sock|" "$T/agents.yaml" > "$T/nobody.yaml"
chmod 0755 "$T"
chmod 0644 "$T/nobody.yaml"
rc=0
timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$B/agentd" -c "$T/nobody.yaml" > "$T/acc.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "unwritable state_dir: exit $rc: $(cat "$T/acc.log")"
grep -q "state_dir $T/rootdir is not writable" "$T/acc.log" || fail "the directory is not named: $(cat "$T/acc.log")"
grep -q "Permission denied" "$T/acc.log" || fail "the reason is not given: $(cat "$T/acc.log")"
exit 0
