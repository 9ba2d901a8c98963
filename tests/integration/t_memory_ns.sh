# Memory is namespaced by agent, and agentd is the one that says which: a
# worker that names another agent in a memory write (agent_id, agent,
# agent_name, in the metadata) still writes its own agent's memory, locally
# and in Redis; the other agent's memory is untouched.  A memory query that
# names another agent the same ways (and as its search text) is answered
# from the asker's own memory, and so is a recall (query_both_memory_types)
# for words only the other agent's memory holds.
. ./lib.sh
use_redis
redis_start
{ header; cat <<YAML
  victim:
    task_config: {tool: new_files, directories: ["$T"]}
  thief:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_mem_forge, agent: victim, content: "forged by thief"}
  snoop:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_mem_query, agent: victim}
  seeker:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_mem_query, agent: victim, recall: true, query: "new_files scanned directories count"}
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

# snoop asks for victim's memory twice: first it has none of its own, then
# only the row its first run left.
runs_are() { [ "$(field "$1" run_count)" = "$2" ]; }
asked() { events_json snoop | jget "[e['payload']['result']['items'] for e in d if e['type']=='background_task_completed'][$1]"; }
ctl --json memory victim | jget "len(d) > 0" | grep -qx true || fail "victim has no memory to steal"
ctl run snoop >/dev/null
wait_until 10 runs_are snoop 1 || fail "snoop did not run"
wait_until 10 sh -c "[ \"\$(AGENTD_SOCKET=$SOCK $B/agentctl --json memory snoop)\" != '[]' ]" || fail "snoop's first run left no memory"
ctl run snoop >/dev/null
wait_until 10 runs_are snoop 2 || fail "snoop did not run twice"
[ "$(field snoop error_count)" = 0 ] || fail "a memory query failed: $(field snoop last_error)"
[ "$(asked 0)" = "[]" ] || fail "a query naming victim got memory: $(asked 0)"
own=$(ctl --json memory snoop | jget "[m['content'] for m in d][:1]")
[ "$(asked 1 | jget "[m['content'] for m in d]")" = "$own" ] || fail "snoop's second query did not get its own row ($own): $(asked 1)"
note "a memory query naming another agent got the asker's memory only"

# seeker recalls the words of victim's rows, naming victim every way: none
# of victim's rows come back, its own do (its first run's, the second time).
recalled() { events_json seeker | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][$1]"; }
ctl --json memory victim --query "new_files scanned directories count" | jget "len(d['hits']) > 0" | grep -qx true ||
	fail "victim's own recall finds nothing to steal"
ctl run seeker >/dev/null
wait_until 10 runs_are seeker 1 || fail "seeker did not run"
wait_until 10 sh -c "[ \"\$(AGENTD_SOCKET=$SOCK $B/agentctl --json memory seeker)\" != '[]' ]" || fail "seeker's run left no memory"
ctl run seeker >/dev/null
wait_until 10 runs_are seeker 2 || fail "seeker did not run twice"
[ "$(field seeker error_count)" = 0 ] || fail "a recall failed: $(field seeker last_error)"
recalled 0 | jget "d['items']==[] and 'error' not in d" | grep -qx true || fail "a recall naming victim got: $(recalled 0)"
recalled 1 | jget "len(d['items']) > 0 and all('scanned' not in h['content'] for h in d['items'])" | grep -qx true ||
	fail "seeker's second recall: $(recalled 1)"
own=$(ctl --json memory seeker | jget "sorted(m['id'] for m in d)[:1]")
recalled 1 | jget "sorted(h['id'] for h in d['items'])" | grep -qxF "$own" || fail "seeker's recall did not get its own row $own: $(recalled 1)"
note "a recall naming another agent, for that agent's words, got the asker's memory only"
exit 0
