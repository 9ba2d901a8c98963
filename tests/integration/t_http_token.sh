# The HTTP API's bearer token is a secret like the others: an agent that
# echoes it (here in its task and in an event it emits) has it redacted
# wherever agentd would keep or show it -- events, status, the state db, the
# log -- while the token still opens the API.
. ./lib.sh

TPORT=$(free_port)
TOKEN=tok-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$T/token"
{ header; cat <<YAML
  leaky:
    task_config: {tool: test_send, type: event, fields: {type: tool_call_result, payload: {said: "the token is $TOKEN"}}}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  http:\n    listen: [\"127.0.0.1:$TPORT\"]\n    token_file: $T/token|" "$T/agents.yaml"
start_agentd
wait_until 10 all_idle || fail "the worker did not come up"
ctl run leaky >/dev/null || fail "run leaky"
wait_until 10 sh -c "$B/agentctl -s $SOCK --json events -n 50 leaky | grep -q 'the token is \[redacted\]'" ||
	fail "the echoed token is not redacted: $(ctl --json events -n 5 leaky | tail -c 600)"
code=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $TOKEN" \
	"http://127.0.0.1:$TPORT/v1/events?agent=leaky")
[ "$code" = 200 ] || fail "the token no longer opens the API: $code"
grep -qF '[redacted]' "$T/body" || fail "the API's events are not redacted"
stop_agentd || fail "agentd exit code $?"
grep -rqF "${TOKEN#tok-}" "$T/agentd.log" "$T/state" "$T/body" && fail "the token is in agentd's log, state or answers"
exit 0
