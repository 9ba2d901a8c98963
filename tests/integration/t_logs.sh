# Logging: worker stderr lands in agentd's log under the agent's name;
# SIGUSR1 reopens the log file (logrotate); log_format json is JSON.
. ./lib.sh

{ header | sed "s|log_level: debug|log_level: info\n  log_file: $T/agentd.out\n  log_format: json|"; cat <<YAML
  talker:
    task_config: {tool: test_fail, args: {message: "said on stderr"}}
    max_retries: 0
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "worker not idle"
ctl run talker >/dev/null
wait_until 5 grep -q "said on stderr" "$T/agentd.out" || fail "worker stderr not in the log"
python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert all({"ts", "level", "msg"} <= set(l) for l in lines), "fields"
assert any(l.get("agent") == "talker" for l in lines), "no agent field"
' "$T/agentd.out" || fail "log is not JSON lines with ts/level/msg/agent"
mv "$T/agentd.out" "$T/agentd.out.1"
kill -USR1 "$AGENTD_PID"
wait_until 5 test -s "$T/agentd.out" || fail "USR1 did not reopen the log"
grep -q "log file reopened" "$T/agentd.out" || fail "no reopen line in the new file"
exit 0
