# Memory is namespaced by agent, and agentd is the one that says which: a
# worker that names another agent in a memory write (agent_id, agent,
# agent_name, in the metadata) still writes its own agent's memory, locally
# and in Redis; the other agent's memory is untouched.
. ./lib.sh
use_redis
redis_start
{ header; cat <<YAML
  victim:
    task_config: {tool: new_files, directories: ["$T"]}
  thief:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_mem_forge, agent: victim, content: "forged by thief"}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: redis\n  redis: {port: $PORT}|" "$T/agents.yaml"
start_agentd
wait_until 10 all_idle || fail "workers did not come up"
ctl run victim >/dev/null
wait_until 10 sh -c "[ \"\$($B/agentctl -s $SOCK --json status victim | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])')\" = 1 ]" || fail "victim did not run"
ctl run thief >/dev/null
wait_until 10 sh -c "[ \"\$($B/agentctl -s $SOCK --json status thief | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])')\" = 1 ]" || fail "thief did not run"
[ "$(field thief error_count)" = 0 ] || fail "the forging run failed: $(field thief last_error)"
wait_until 10 outbox_is memory_pending -eq 0 || fail "memory not shipped"

ctl --json memory victim | jget "any('forged' in (m.get('content') or '') for m in d)" | grep -qx false ||
	fail "the forged row is in the victim's memory"
ctl --json memory thief | jget "any(m.get('content')=='forged by thief' for m in d)" | grep -qx true ||
	fail "the forged row is not in the thief's own memory"
R LRANGE 'agentd:{victim}:memory:episodic' 0 -1 | grep -q forged && fail "the forged row reached the victim's list in Redis"
R LRANGE 'agentd:{thief}:memory:episodic' 0 -1 | grep -q '"agent_id":"thief"' || fail "the thief's row in Redis does not say thief"
note "a forged memory write stayed the writer's own"
exit 0
