# Memory that remembers, end to end with the loopback model: the model's
# remember tool keeps a long-term fact and a working note; the next run's
# prompt holds the fact as recalled memory and the note as the session's
# working memory; the model's recall tool finds the fact by a question in
# other words; agentctl memory --query prints hits with score and type;
# another agent's memory is never among them; agentctl restart starts a
# new session without the note; --clear empties a type; the tools follow
# local_tools.
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{
 "mem": [
  {"body": {"openai_calls": [["remember", {"content": "The backup server is nas2 at 10.0.0.7", "memory_type": "long_term"}],
                             ["remember", {"content": "ticket 4711 is open for the disk of web3", "memory_type": "working"}]]}},
  {"body": {"openai_text": "noted"}},
  {"body": {"openai_calls": [["recall", {"query": "which host keeps the backups", "memory_types": ["long_term"]}]]}},
  {"body": {"openai_echo_tool": true}},
  {"body": {"openai_text": "third run"}}
 ]
}
JSON
start_fakemodel
{ header; cat <<YAML
  mem:
    model_config: {provider: openai, model: fake, base_url: "http://127.0.0.1:$PORT/mem/v1", api_key_env: AGENTD_T_KEY}
    task_config: {query: "Check the backup server"}
    local_tools: [remember, recall]
    memory_recall_limit: 3
  other:
    task_config: {tool: remember, content: "other's note: the backup server is nas9", memory_type: long_term}
  plain:
    task_config: {tool: system_info}
    local_tools: [system_info]
  every:
    task_config: {tool: system_info}
YAML
} | write_config
export AGENTD_T_KEY=sk-t-memory-recall
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

completed() { count_events "$1" background_task_completed; }
run_and_wait() { # agent, completed runs after this one
	ctl run "$1" >/dev/null || fail "run $1"
	wait_until 20 sh -c "[ \$(AGENTD_SOCKET=$SOCK $B/agentctl --json events -n 1000 $1 | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"] in (\"background_task_completed\", \"background_task_error\")]))') -ge $2 ]" ||
		fail "$1's run $2 did not end"
	[ "$(completed "$1")" = "$2" ] || fail "$1's run $2 failed: $(field "$1" last_error)"
}
request() { python3 -c "import json; print(json.dumps([json.loads(l) for l in open('$T/requests.log')][$1]))"; }
prompt() { request "$1" | jget "[m for m in d['body']['messages'] if m['role']=='user'][0]['content']"; }

# The tools are built-ins: listed by default, and only where local_tools says.
field every available_tools | jget "'remember' in d and 'recall' in d" | grep -qx true || fail "remember/recall not offered by default"
field plain available_tools | jget "'remember' in d or 'recall' in d" | grep -qx false || fail "local_tools did not keep them out"
field mem available_tools | jget "sorted(d)" | grep -qx '\["recall", "remember"\]' || fail "mem's tools: $(field mem available_tools)"

run_and_wait mem 1
run_and_wait other 1
ctl --json memory mem --type long_term | jget "[m['content'] for m in d]" | grep -q "nas2 at 10.0.0.7" || fail "the long-term fact was not kept"
ctl --json memory mem --type working | jget "[m['content'] for m in d]" | grep -q "ticket 4711" || fail "the working note was not kept"
ctl --json memory mem --type long_term | jget "d[0]['role']" | grep -qx assistant || fail "remember's rows are not the assistant's"
note "remember kept a long-term fact and a working note"

# The next run: its prompt recalls the fact and gives the note back; the
# model's recall finds the fact by other words; the other agent's is not
# anywhere.
run_and_wait mem 2
p=$(prompt 2)
echo "$p" | grep -q "^Recalled memory" || fail "no recalled memory in the prompt: $p"
echo "$p" | grep -q "(long_term, score [0-9.]*) The backup server is nas2" || fail "the fact is not labelled as recalled: $p"
echo "$p" | grep -q "^Working memory (notes of this session):" || fail "no working memory in the prompt: $p"
echo "$p" | grep -q "ticket 4711" || fail "the note is not in the prompt: $p"
echo "$p" | grep -q "nas9" && fail "another agent's memory reached the prompt: $p"
echo "$p" | sed -n '/^Recalled memory/,/^$/p' | grep -q "ticket 4711" &&
	fail "the run's recall looked in working memory (episodic and long_term only): $p"
echo "$p" | python3 -c "import sys; p=sys.stdin.read(); sys.exit(not p.index('Recalled memory') < p.index('Task: Check the backup server'))" ||
	fail "memory does not come before the task"
out=$(events_json mem | jget "[e['payload']['result']['answer'] for e in d if e['type']=='background_task_completed'][-1]")
echo "$out" | jget "d['hits'][0]['content']" | grep -q "nas2" || fail "the recall tool did not find the fact: $out"
echo "$out" | jget "d['hits'][0]['memory_type']=='long_term' and d['hits'][0]['score'] > 0 and d['degraded']==False" |
	grep -qx true || fail "the recall tool's hit: $out"
echo "$out" | grep -q nas9 && fail "the recall tool returned another agent's memory: $out"
note "the next run recalled the fact and got the note back; the model's recall found it"

# Operators: --query prints score, type, time, content; --json for scripts.
out=$(ctl memory mem --query "where do backups go")
echo "$out" | grep -qE '^[01]\.[0-9]{3} long_term  [0-9-]+ [0-9:]+ The backup server is nas2' || fail "agentctl memory --query: $out"
echo "$out" | grep -q nas9 && fail "--query returned another agent's memory: $out"
ctl --json memory mem --query "backup" -n 1 | jget "len(d['hits'])==1 and d['degraded']==False and d['hits'][0]['score']>0" |
	grep -qx true || fail "--json --query -n 1: $(ctl --json memory mem --query backup -n 1)"
ctl --json memory mem --query "disk" --type working | jget "[h['memory_type'] for h in d['hits']]" | grep -qx '\["working"\]' ||
	fail "--query --type working: $(ctl --json memory mem --query disk --type working)"
ctl --json memory other --query "backup server" | jget "[h['content'] for h in d['hits']]" | grep -q nas9 || fail "other's own query"
ctl --json memory mem --query "backup server" --rank text | jget "d['degraded']==False and all('text_rank' in h and 'vector_rank' not in h for h in d['hits'])" |
	grep -qx true || fail "--rank text: $(ctl --json memory mem --query 'backup server' --rank text)"
ctl --json memory mem --query "backup server" --rank vector | jget "len(d['hits'])>0 and all('vector_rank' in h and 'text_rank' not in h for h in d['hits'])" |
	grep -qx true || fail "--rank vector: $(ctl --json memory mem --query 'backup server' --rank vector)"
ctl memory mem --query "x" --rank bm25 > /dev/null 2>&1 && fail "an unknown rank was accepted"
ctl memory mem --query "x" -n 51 > /dev/null 2>&1 && fail "-n 51 with --query was accepted"
ctl memory mem --query "x" --type semantic > /dev/null 2>&1 && fail "an unknown type was accepted"
note "agentctl memory --query: hits with score and type, the agent's own only"

# The HTTP API's memory route answers the same query.
[ "$(hcode '/v1/agents/mem/memory?query=where%20do%20backups%20go&type=long_term&limit=3')" = 200 ] || fail "GET memory?query: $(hbody)"
hbody | jget "d['hits'][0]['memory_type']=='long_term' and 'nas2' in d['hits'][0]['content'] and d['hits'][0]['score']>0 and 1<=len(d['hits'])<=3 and not any('nas9' in h['content'] for h in d['hits'])" |
	grep -qx true || fail "GET memory?query: $(hbody)"
[ "$(hcode '/v1/agents/mem/memory?query=backup&rank=bm25')" = 400 ] || fail "an unknown rank over HTTP: $(hbody)"
note "GET /v1/agents/{id}/memory?query= is the same recall"

# A session reset (agentctl restart): a new session_id, the note gone, the fact kept.
sid=$(field mem session_id)
sleep 1.1	# session ids carry the second they began
ctl restart mem >/dev/null
wait_until 10 state_is mem idle || fail "mem did not come back"
[ "$(field mem session_id)" != "$sid" ] || fail "agentctl restart kept the session"
[ "$(ctl --json memory mem --type working)" = "[]" ] || fail "the old session's working memory is still there"
ctl --json memory mem --type long_term | grep -q nas2 || fail "the restart lost long-term memory"
run_and_wait mem 3
prompt 4 | grep -q "Working memory" && fail "the new session got the old one's notes: $(prompt 4)"
prompt 4 | grep -q "nas2" || fail "the new session lost the recalled fact: $(prompt 4)"
note "agentctl restart: a new session without the old one's working memory"

ctl memory mem --clear long_term | grep -qx "mem: long_term memory cleared" || fail "--clear: $(ctl memory mem --clear long_term)"
[ "$(ctl --json memory mem --type long_term)" = "[]" ] || fail "--clear long_term left rows"
ctl --json memory mem --query "backup server" | jget "[h for h in d['hits'] if h['memory_type']=='long_term']" | grep -qx '\[\]' ||
	fail "a cleared fact is still recalled"
ctl memory mem --clear semantic > /dev/null 2>&1 && fail "--clear of an unknown type was accepted"
grep -q "sk-t-memory-recall" "$T/agentd.log" && fail "the model key reached the log"
note "--clear emptied long-term memory, for recall too"
exit 0
