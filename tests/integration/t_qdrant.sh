# memory_store qdrant against the Qdrant stand-in (tests/qdrantstub.py: no
# Qdrant server can be installed here): a fact the model remembers becomes
# a point of the collection of its model and dimension (made with size and
# Cosine, agent_id indexed) with its vector, its row id and its payload,
# upserted with wait=true; recall through the model's tool and agentctl
# memory --query is ranked by Qdrant (status counts it) and not degraded;
# every query carries the asking agent's filter, and a forged mem_recall
# naming another agent gets none of its rows; the api-key goes in every
# request and nowhere else (log, status, events, the state db).
. ./lib.sh

QKEY=qk-t-qdrant-0123456789
start_qdrant --api-key "$QKEY"
cat > "$T/script.json" <<'JSON'
{
 "mem": [
  {"body": {"openai_calls": [["remember", {"content": "The backup server is nas2 at 10.0.0.7", "memory_type": "long_term"}]]}},
  {"body": {"openai_text": "noted"}},
  {"body": {"openai_calls": [["recall", {"query": "backup server", "memory_types": ["long_term"]}]]}},
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
    task_config: {tool: remember, content: "other's note: the backup server is nas9", memory_type: long_term}
  seeker:
    env: {AGENTD_TEST_HOOKS: '1'}
    task_config: {tool: test_mem_query, agent: other, recall: true, query: "backup server nas9"}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: qdrant\n  qdrant: {url: \"http://127.0.0.1:$QPORT/\", api_key_env: AGENTD_T_QKEY, collection_prefix: t}|" "$T/agents.yaml"
export AGENTD_T_KEY=sk-t-qdrant-model AGENTD_T_QKEY=$QKEY
"$B/agentd" -c "$T/agents.yaml" --check-config > "$T/check.out" 2>&1 || fail "--check-config: $(cat "$T/check.out")"
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

qd() { ctl --json status | jget "d['qdrant']['$1']"; }
pending_is() { [ "$(qd memory_pending)" = "$1" ]; }
runs() { field "$1" run_count; }
run_and_wait() { # agent, runs after this one
	ctl run "$1" >/dev/null || fail "run $1"
	wait_until 30 sh -c "[ \"\$($B/agentctl -s $SOCK --json status $1 | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"run_count\"] if d[\"state\"]==\"idle\" else -1)')\" = $2 ]" ||
		fail "$1's run $2 did not end"
	[ "$(field "$1" error_count)" = 0 ] || fail "$1's run failed: $(field "$1" last_error)"
}
COLL=t_hash_hash-v1_384
reqs() { python3 -c "
import json, sys
rs = [json.loads(l) for l in open('$T/qdrant.log')]
print(json.dumps([r for r in rs if $1]))"; }
points() { Q POST "/collections/$COLL/points/scroll" '{"limit": 1000}' | jget "d['result']['points']"; }

wait_until 20 sh -c "[ \"\$($B/agentctl -s $SOCK --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"qdrant\"][\"qdrant\"])')\" = up ]" ||
	fail "qdrant is not up: $(ctl --json status | jget "d.get('qdrant')")"
run_and_wait mem 1
wait_until 20 pending_is 0 || fail "memory not shipped: $(ctl --json status | jget "d['qdrant']")"

# The collection: made with the model's size and Cosine, agent_id indexed.
reqs "r['method']=='PUT' and r['path']=='/collections/$COLL'" | jget "d[0]['body']" |
	grep -qxF '{"vectors": {"size": 384, "distance": "Cosine"}}' || fail "the collection was not made as documented: $(reqs "r['method']=='PUT'")"
reqs "r['path']=='/collections/$COLL/index'" | jget "d[0]['body']" |
	grep -qxF '{"field_name": "agent_id", "field_schema": "keyword"}' || fail "agent_id is not indexed"
reqs "r['path']=='/collections/$COLL/points' and r['method']=='PUT'" | jget "all(r['query']=='wait=true' for r in d) and len(d) > 0" |
	grep -qx true || fail "the upserts do not wait: $(reqs "r['path'].endswith('/points')")"
note "collection $COLL made with size 384, Cosine, agent_id indexed; upserts wait"

# The point: our row id, its vector, its payload.
id=$(ctl --json memory mem --type long_term | jget "[m['id'] for m in d if 'nas2' in m['content']][0]")
p=$(points | jget "[p for p in d if p['id']==$id][0]") || fail "row $id is not a point: $(points)"
echo "$p" | jget "[d['payload']['agent_id'], d['payload']['memory_type'], d['payload']['row_id'], d['payload']['model'], len(d['vector'])]" |
	grep -qxF "[\"mem\", \"long_term\", $id, \"hash:hash-v1/384\", 384]" || fail "the point: $p"
echo "$p" | jget "d['payload']['content']" | grep -qx "The backup server is nas2 at 10.0.0.7" || fail "the content: $p"
echo "$p" | jget "d['payload']['created_at']" | grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' || fail "created_at: $p"
# the vector is the row's (normalized by Qdrant for Cosine, as agentd's is)
echo "$p" | jget "abs(sum(x*x for x in d['vector']) - 1) < 1e-4 and sum(1 for x in d['vector'] if x) > 3" | grep -qx true ||
	fail "the vector: $(echo "$p" | jget "d['vector'][:8]")"
note "the fact is point $id with its vector and payload"

# Recall through the tool: answered by Qdrant, not degraded.
before=$(qd searches)
run_and_wait mem 2
out=$(events_json mem | jget "[e['payload']['result']['answer'] for e in d if e['type']=='background_task_completed'][-1]")
echo "$out" | jget "[d['degraded'], d['hits'][0]['content']]" |
	grep -qxF '[false, "The backup server is nas2 at 10.0.0.7"]' || fail "the tool's recall: $out"
[ "$(qd searches)" -gt "$before" ] || fail "the recall was not Qdrant's: searches $(qd searches)"
q=$(reqs "r['path']=='/collections/$COLL/points/query'" | jget "d[-1]['body']")
qs=$(echo "$q" | jget "dict(d, query=len(d['query']))")
echo "$q" | jget "d['filter']['must'][0]" | grep -qxF '{"key": "agent_id", "match": {"value": "mem"}}' || fail "the query's filter: $qs"
echo "$q" | jget "[len(d['query']), d['limit'] >= 50, d['with_payload']]" | grep -qxF '[384, true, false]' || fail "the query: $qs"
echo "$q" | jget "d['filter']['must'][2]" | grep -qxF '{"key": "memory_type", "match": {"any": ["long_term"]}}' || fail "the query's types: $qs"
note "the model's recall was ranked by Qdrant, filtered to mem and long_term"

before=$(qd searches)
out=$(ctl --json memory mem --query "backup server" --type long_term)
echo "$out" | jget "[d['degraded'], d['hits'][0]['content']]" | grep -qxF '[false, "The backup server is nas2 at 10.0.0.7"]' ||
	fail "agentctl memory --query: $out"
[ "$(qd searches)" = $((before + 1)) ] || fail "--query was not Qdrant's"
note "agentctl memory --query was ranked by Qdrant"

# Isolation: other's row is in the same collection; a forged recall from
# seeker naming other every way is answered from seeker's rows alone, and
# the query agentd sent says seeker.
run_and_wait other 1
wait_until 20 pending_is 0 || fail "other's memory not shipped"
points | jget "sorted(p['payload']['agent_id'] for p in d)" | grep -q '"other"' || fail "other's row is not in $COLL"
run_and_wait seeker 1
res=$(events_json seeker | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][-1]")
echo "$res" | jget "d['items']==[] and 'error' not in d" | grep -qx true || fail "a forged recall naming other got: $res"
reqs "r['path'].endswith('/points/query')" | jget "[r['body']['filter']['must'][0]['match']['value'] for r in d]" |
	jget "d[-1]" | grep -qx seeker || fail "the forged recall's query was not filtered to seeker: $(reqs "r['path'].endswith('/points/query')")"
reqs "r['path'].endswith('/points/query')" | jget "all(r['body']['filter']['must'][0]['key']=='agent_id' and r['body']['filter']['must'][0]['match']['value'] in ('mem', 'seeker') for r in d)" |
	grep -qx true || fail "a query without its agent's filter: $(reqs "r['path'].endswith('/points/query')")"
note "every query carries its agent's filter; a forged one got none of other's rows"

# The api-key: in every request, nowhere agentd writes.
reqs "True" | jget "all(r['headers'].get('api-key')=='$QKEY' for r in d)" | grep -qx true ||
	fail "a request without the api-key: $(reqs "r['headers'].get('api-key')!='$QKEY'")"
{ ctl --json status; events_json mem; events_json other; cat "$T/agentd.log"; } | grep -qF "$QKEY" &&
	fail "the api-key was written out"
sqlite3 "$T/state/state.db" .dump 2>/dev/null | grep -qF "$QKEY" && fail "the api-key is in the state db"
[ "$(qd qdrant)" = up ] && [ "$(qd last_error)" = null ] || fail "status: $(ctl --json status | jget "d['qdrant']")"
note "the api-key went in every request and nowhere else"
stop_agentd || fail "agentd did not stop cleanly"
