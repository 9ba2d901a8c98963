# The control socket serves only agentd's own uid and root (SO_PEERCRED),
# even when its file mode would let others connect: another uid is told
# it is refused (agentctl exits 1) and agentd logs who it was.
. ./lib.sh

[ "$(id -u)" = 0 ] || skip "needs root to connect as another uid"
command -v setpriv > /dev/null || skip "needs setpriv (util-linux)"

{ header; cat <<YAML
  one:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
# Let uid 65534 reach the socket: the directories, the file mode, and a
# copy of agentctl it may run.
chmod 711 "$T" "$T/state"
chmod 666 "$SOCK"
install -m 755 "$B/agentctl" "$T/agentctl"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$T/agentctl" -s "$SOCK" "$@"; }

as_nobody status > "$T/nobody.out" 2> "$T/nobody.err"
rc=$?
[ $rc = 1 ] || fail "another uid: exit $rc, $(cat "$T/nobody.out" "$T/nobody.err")"
grep -q "uid 65534 may not use this control socket" "$T/nobody.err" || fail "no reason: $(cat "$T/nobody.err")"
[ -s "$T/nobody.out" ] && fail "another uid was answered: $(cat "$T/nobody.out")"
wait_until 10 grep -q "control socket: refused uid 65534" "$T/agentd.log" || fail "the refusal is not logged"
as_nobody stop 2> /dev/null && fail "another uid stopped agentd"
kill -0 "$AGENTD_PID" || fail "agentd is gone"
ctl status > /dev/null || fail "its own uid is refused"
exit 0
