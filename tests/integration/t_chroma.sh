# memory_store chromadb against a real Chroma server (npm chromadb's
# `chroma run`, from scripts/bootstrap): a memory the model keeps with
# remember reaches Chroma with its vector, in agentd's tenant, database and
# collection; recall (agentctl memory --query and the model's tool) is
# answered by Chroma, the asker's rows only, also for a forged recall naming
# another agent; --clear deletes from Chroma too.  Chroma killed: recall is
# degraded and says why, rows wait in the outbox, runs go on; Chroma back:
# every row arrives once, retention's deletes too, recall is Chroma's again.
. ./lib.sh
use_chroma
chroma_start

cat > "$T/script.json" <<'JSON'
{
 "mem": [
  {"body": {"openai_calls": [["remember", {"content": "The backup server is nas2 at 10.0.0.7", "memory_type": "long_term"}]]}},
  {"body": {"openai_text": "noted"}},
  {"body": {"openai_calls": [["recall", {"query": "which host keeps the backups", "memory_types": ["long_term"]}]]}},
  {"body": {"openai_echo_tool": true}}
 ]
}
JSON
start_fakemodel
{ header; cat <<YAML
  mem:
    model_config: {provider: openai, model: fake, base_url: "http://127.0.0.1:$PORT/mem/v1", api_key_env: AGENTD_T_KEY}
    task_config: {query: "Check the backup server"}
    local_tools: [remember, recall]
    memory_recall_limit: 0
  other:
    task_config: {tool: remember, content: "other's secret: the backup server is nas9", memory_type: long_term}
  seeker:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_mem_query, agent: other, recall: true, query: "other secret backup server nas9"}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: chromadb\n  memory_retention: 10\n  chromadb: {url: \"http://127.0.0.1:$CPORT/\", tenant: agentd_t, database: memories, collection: agentd}|" "$T/agents.yaml"
export AGENTD_T_KEY=sk-t-chroma
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

chroma() { ctl --json status | jget "d['chromadb']['$1']"; }
pending_is() { [ "$(chroma memory_pending)" = "$1" ]; }
up() { [ "$(chroma chromadb)" = up ]; }
runs_are() { [ "$(field "$1" run_count)" = "$2" ]; }
run_and_wait() { ctl run "$1" >/dev/null || fail "run $1"; wait_until 20 runs_are "$1" "$2" || fail "$1's run $2 did not end"; [ "$(field "$1" error_count)" = 0 ] || fail "$1's run $2 failed: $(field "$1" last_error)"; }
DB=/tenants/agentd_t/databases/memories
coll_id() { CH "$DB/collections" | jget "[c['id'] for c in d if c['name']=='agentd-hash_hash-v1_384-384'][0]"; }
# in_chroma WHERE: the records Chroma has for that where, as {ids, embeddings, documents, metadatas}
in_chroma() { CH "$DB/collections/$(coll_id)/get" -d "{\"where\": $1, \"include\": [\"embeddings\", \"documents\", \"metadatas\"]}"; }

[ "$(ctl --json status mem | jget "d['memory_store']")" = chromadb ] || fail "status does not name chromadb"
wait_until 30 up || fail "agentd did not reach Chroma: $(chroma last_error)"
run_and_wait mem 1
wait_until 30 pending_is 0 || fail "memory not shipped: $(ctl --json status | jget "d['chromadb']")"
got=$(in_chroma '{"$and": [{"agent_id": "mem"}, {"memory_type": "long_term"}]}')
echo "$got" | jget "d['documents']" | grep -q "nas2 at 10.0.0.7" || fail "the fact is not in Chroma: $got"
id=$(ctl --json memory mem --type long_term | jget "d[0]['id']")
echo "$got" | jget "d['ids'] == ['$id'] and d['metadatas'][0]['row'] == $id and len(d['embeddings'][0]) == 384 and abs(sum(x*x for x in d['embeddings'][0]) - 1) < 1e-3" |
	grep -qx true || fail "the record is not row $id with its 384-dimension vector: $got"
note "remember through a model run: the row is in Chroma (tenant, database, collection of the model) with its vector"

# Recall: answered by Chroma (status counts it), the fact first.
s0=$(chroma searches)
q=$(ctl --json memory mem --query "which host keeps the backups" --type long_term)
echo "$q" | jget "d['degraded'] == False and d['hits'][0]['content'].startswith('The backup server is nas2') and d['hits'][0]['vector_rank'] == 1" |
	grep -qx true || fail "agentctl memory --query: $q"
[ "$(chroma searches)" = $((s0 + 1)) ] || fail "the query was not Chroma's: $(ctl --json status | jget "d['chromadb']")"
run_and_wait mem 2
out=$(events_json mem | jget "[e['payload']['result']['answer'] for e in d if e['type']=='background_task_completed'][-1]")
echo "$out" | jget "d['degraded'] == False and d['hits'][0]['content'].startswith('The backup server is nas2')" | grep -qx true ||
	fail "the recall tool: $out"
[ "$(chroma searches)" = $((s0 + 2)) ] || fail "the tool's recall was not Chroma's"
note "recall (agentctl and the model's tool) answered by Chroma"

# Isolation: other's rows are in the same collection; a forged recall naming
# other, for other's words, gets none of them.
run_and_wait other 1
wait_until 30 pending_is 0 || fail "other's memory not shipped"
in_chroma '{"agent_id": "other"}' | jget "len(d['ids'])" | grep -qx 2 || fail "other's rows not in Chroma: $(in_chroma '{"agent_id": "other"}')"
run_and_wait seeker 1
run_and_wait seeker 2
recalled=$(events_json seeker | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][-1]")
echo "$recalled" | jget "len(d['items']) > 0 and all('nas9' not in (h['content'] or '') for h in d['items'])" | grep -qx true ||
	fail "a forged recall naming other: $recalled"
note "a forged recall naming another agent got none of its rows from Chroma"

# --clear deletes from Chroma too.
ctl memory mem --clear long_term >/dev/null || fail "--clear"
wait_until 30 sh -c "[ \"\$(curl -s -H 'Content-Type: application/json' http://127.0.0.1:$CPORT/api/v2$DB/collections/$(coll_id)/get -d '{\"where\": {\"\$and\": [{\"agent_id\": \"mem\"}, {\"memory_type\": \"long_term\"}]}}' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"ids\"]))')\" = 0 ]" ||
	fail "--clear left mem's long_term rows in Chroma: $(in_chroma '{"agent_id": "mem"}' | jget "d['ids']")"
in_chroma '{"agent_id": "other"}' | jget "len(d['ids'])" | grep -qx 2 || fail "--clear of mem took other's rows"
note "agentctl memory --clear deletes the rows from Chroma"

# Chroma down: recall degraded with why, runs go on, rows wait.
chroma_kill
q=$(ctl --json memory other --query "backup server")
echo "$q" | jget "d['degraded'] == True and 'chromadb' in d['reason'] and d['hits'][0]['content'].startswith(\"other's secret\")" | grep -qx true ||
	fail "recall with Chroma down: $q"
for n in 2 3 4 5 6 7; do run_and_wait other $n; done
wait_until 30 sh -c "! $B/agentctl -s $SOCK --json status | grep -q '\"chromadb\": \"up\"'" || fail "status still says up"
[ "$(chroma memory_pending)" -gt 0 ] || fail "nothing waits in the outbox"
[ "$(chroma last_error)" != null ] || fail "no last_error while Chroma is down"
note "Chroma killed: recall degraded with the reason ($(echo "$q" | jget "d['reason']")), $(chroma memory_pending) rows pending"

chroma_start
wait_until 60 pending_is 0 || fail "the outbox was not drained after Chroma came back: $(ctl --json status | jget "d['chromadb']")"
local_ids() { for t in long_term episodic procedural; do ctl --json memory other --type $t -n 100 | jget "[m['id'] for m in d]"; done | python3 -c 'import json,sys; print(sorted(i for l in sys.stdin for i in json.loads(l)))'; }
chroma_ids() { in_chroma '{"agent_id": "other"}' | jget "sorted(int(i) for i in d['ids'])"; }
same() { [ "$(local_ids)" = "$(chroma_ids)" ]; }
wait_until 30 same || fail "Chroma's rows of other $(chroma_ids) are not the local ones $(local_ids)"
[ "$(in_chroma '{"agent_id": "other"}' | jget "len(d['ids']) == len(set(d['ids']))")" = true ] || fail "a row twice in Chroma"
# The rows shipped meanwhile are pruned by the next run's append: the
# deletes follow them to Chroma.
for n in 8 9 10 11 12; do run_and_wait other $n; done
wait_until 30 pending_is 0 || fail "other's last runs not shipped"
wait_until 30 same || fail "after retention, Chroma's rows of other $(chroma_ids) are not the local ones $(local_ids)"
[ "$(ctl --json memory other --type long_term -n 100 | jget "len(d)")" = 10 ] || fail "retention did not prune other's long_term rows"
[ "$(in_chroma '{"$and": [{"agent_id": "other"}, {"memory_type": "long_term"}]}' | jget "len(d['ids'])")" = 10 ] || fail "retention's deletes did not reach Chroma"
q=$(ctl --json memory other --query "backup server")
echo "$q" | jget "d['degraded'] == False" | grep -qx true || fail "recall still degraded: $q"
ctl --json status | jget "d['chromadb']['last_error'] is None and d['chromadb']['last_failure']['until'] is not None" |
	grep -qx true || fail "status once Chroma is back: $(ctl --json status | jget "d['chromadb']")"
note "Chroma back: the rows shipped once each, retention's deletes applied, recall Chroma's again"
exit 0
