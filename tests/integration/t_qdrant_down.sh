# memory_store qdrant while the Qdrant stand-in is gone, failing (503) or
# silent: rows wait in the outbox (memory_pending counts them, status says
# down and why), recall answers from agentd's index with degraded and the
# reason, nothing is lost; once it answers again every row is shipped once,
# in id order.  agentctl memory --clear deletes the type's points there
# too.  QDRANT_HOST/QDRANT_PORT are where agentd goes (over the file's url).
. ./lib.sh

start_qdrant
{ header; cat <<YAML
  notes:
    task_config: {tool: remember, content: "the deploy of web3 needs the disk of nas2", memory_type: long_term}
YAML
} | write_config
# The file's url is wrong on purpose: the seed's variables win.
sed -i "s|^agentd:|agentd:\n  memory_store: qdrant\n  qdrant: {url: \"http://127.0.0.1:9/\", request_timeout: 1s}|" "$T/agents.yaml"
export QDRANT_HOST=127.0.0.1 QDRANT_PORT=$QPORT
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

qd() { ctl --json status | jget "d['qdrant']['$1']"; }
pending_is() { [ "$(qd memory_pending)" "$1" "$2" ]; }
state_is_q() { [ "$(qd qdrant)" = "$1" ]; }
rows() { ctl --json memory notes -n 1000 | jget "len(d)"; }
runs_done() { [ "$(field notes run_count)" = "$1" ] && state_is notes idle; }
run_and_wait() { ctl run notes >/dev/null || fail "run"; wait_until 30 runs_done "$1" || fail "run $1 did not end"; }
COLL=agentd_hash_hash-v1_384
upserted() { python3 -c "
import json
ids = [p['id'] for r in map(json.loads, open('$T/qdrant.log'))
       if r['method'] == 'PUT' and r['path'] == '/collections/$COLL/points' for p in r['body']['points']]
print(json.dumps(ids))"; }
points() { Q POST "/collections/$COLL/points/scroll" '{}' | jget "sorted(p['id'] for p in d['result']['points'])"; }
local_ids() { for t in working episodic long_term procedural; do ctl --json memory notes --type $t -n 1000 |
	jget "' '.join(str(m['id']) for m in d)"; done | python3 -c "import sys,json; print(json.dumps(sorted(int(x) for x in sys.stdin.read().split())))"; }
recall() { ctl --json memory notes --query "deploy web3 disk" --type long_term; }

wait_until 20 state_is_q up || fail "QDRANT_HOST/QDRANT_PORT not honoured: $(ctl --json status | jget "d['qdrant']")"
[ "$(qd url)" = "http://127.0.0.1:$QPORT" ] || fail "url: $(qd url)"
note "QDRANT_HOST/QDRANT_PORT honoured over the file's url"
run_and_wait 1
wait_until 20 pending_is = 0 || fail "not shipped"

# Gone: the rows of three runs wait, recall is the index's, degraded, why.
qdrant_kill
run_and_wait 2
run_and_wait 3
run_and_wait 4
wait_until 30 state_is_q down || fail "status does not say down: $(ctl --json status | jget "d['qdrant']")"
pending_is -ge 3 || fail "the rows do not wait: $(qd memory_pending)"
qd last_error | grep -q "Couldn't connect\|onnect" || fail "last_error: $(qd last_error)"
out=$(recall)
echo "$out" | jget "[d['degraded'], d['reason'].startswith('qdrant: qdrant is down'), 'agentd' in d['reason'], len(d['hits']) >= 4]" |
	grep -qxF '[true, true, true, true]' || fail "recall while Qdrant is gone: $(echo "$out" | jget "[d['degraded'], d.get('reason'), len(d['hits'])]")"
note "Qdrant gone: $(qd memory_pending) rows wait, recall degraded: $(echo "$out" | jget "d['reason']" | cut -c1-90)"

# Back (the same storage): every row once, in id order.
start_qdrant
wait_until 60 pending_is = 0 || fail "not shipped after Qdrant came back: $(ctl --json status | jget "d['qdrant']")"
wait_until 10 state_is_q up || fail "not up again"
[ "$(points)" = "$(local_ids)" ] || fail "Qdrant's points $(points) are not the rows $(local_ids)"
upserted | jget "d == sorted(d) and len(d) == len(set(d))" | grep -qx true || fail "not shipped once each in order: $(upserted)"
recall | jget "d['degraded']" | grep -qx false || fail "recall still degraded: $(recall)"
note "back: the rows shipped once each, in id order: $(upserted)"

# A 503, and a server that does not answer: the same.
echo '{"status": 503}' > "$T/qdrant.faults"
run_and_wait 5
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status | grep -q 'HTTP 503: Service Unavailable: scripted fault'" ||
	fail "a 503 is not shown: $(ctl --json status | jget "d['qdrant']")"
pending_is -ge 1 || fail "the row after a 503 does not wait"
recall | jget "[d['degraded'], 'HTTP 503' in d['reason']]" | grep -qxF '[true, true]' || fail "recall on a 503: $(recall | jget "d.get('reason')")"
echo '{"hang": 5}' > "$T/qdrant.faults"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status | grep -q 'timed out'" ||
	fail "a silent Qdrant is not shown: $(ctl --json status | jget "d['qdrant']")"
rm "$T/qdrant.faults"
wait_until 60 pending_is = 0 || fail "not shipped after the faults"
[ "$(points)" = "$(local_ids)" ] || fail "after the faults, Qdrant's points $(points) are not the rows $(local_ids)"
upserted | jget "sorted(set(d)) == $(local_ids)" | grep -qx true || fail "a row missing: $(upserted)"
note "a 503 and a timeout: shown, waited out, nothing lost"

# --clear deletes the points too.
ctl memory notes --clear long_term > /dev/null || fail "--clear"
wait_until 30 sh -c "[ \"\$(curl -s -X POST -H 'Content-Type: application/json' --data '{}' http://127.0.0.1:$QPORT/collections/$COLL/points/scroll | python3 -c 'import json,sys; print(len([p for p in json.load(sys.stdin)[\"result\"][\"points\"] if p[\"payload\"][\"memory_type\"]==\"long_term\"]))')\" = 0 ]" ||
	fail "--clear left points in Qdrant: $(points)"
[ "$(points)" = "$(local_ids)" ] || fail "--clear deleted other types' points too: $(points) vs $(local_ids)"
python3 -c "
import json
r = [json.loads(l) for l in open('$T/qdrant.log') if '/points/delete' in l][-1]
print(json.dumps(r['body']['filter']['must'][:2]))" | grep -qxF '[{"key": "agent_id", "match": {"value": "notes"}}, {"key": "memory_type", "match": {"value": "long_term"}}]' ||
	fail "the delete's filter"
note "--clear long_term deleted those points from Qdrant, and only those"
stop_agentd || fail "agentd did not stop cleanly"
