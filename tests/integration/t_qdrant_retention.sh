# memory_store qdrant and memory_retention: the rows retention prunes (only
# once shipped) are deleted from Qdrant too, by agent, type and row_id, so
# the collection holds what the local table holds.
. ./lib.sh

start_qdrant
{ header; cat <<YAML
  notes:
    task_config: {tool: remember, content: "the disk of web3 is at 91%", memory_type: long_term}
  keep:
    task_config: {tool: remember, content: "keep: the disk of web4 is at 12%", memory_type: long_term}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: qdrant\n  memory_retention: 2\n  qdrant: {port: $QPORT}|" "$T/agents.yaml"
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

COLL=agentd_hash_hash-v1_384
runs_done() { [ "$(field "$1" run_count)" = "$2" ] && state_is "$1" idle; }
ids() { ctl --json memory "$1" --type long_term -n 100 | jget "sorted(m['id'] for m in d)"; }
points() { Q POST "/collections/$COLL/points/scroll" '{}' |
	jget "sorted(p['id'] for p in d['result']['points'] if p['payload']['agent_id']=='$1' and p['payload']['memory_type']=='long_term')"; }
same() { [ "$(points "$1")" = "$(ids "$1")" ]; }
ctl run keep >/dev/null
wait_until 30 runs_done keep 1 || fail "keep did not run"
for i in 1 2 3 4 5; do
	ctl run notes >/dev/null
	wait_until 30 runs_done notes $i || fail "run $i did not end"
done
wait_until 30 sh -c "[ \"\$($B/agentctl -s $SOCK --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"qdrant\"][\"memory_pending\"])')\" = 0 ]" ||
	fail "not shipped"
ids notes | jget "len(d)" | grep -qx 2 || fail "retention kept $(ids notes)"
wait_until 30 same notes || fail "Qdrant holds $(points notes), the table $(ids notes)"
same keep && [ "$(points keep | jget "len(d)")" = 1 ] || fail "another agent's points went too: $(points keep)"
grep -q '"path": "/collections/'"$COLL"'/points/delete"' "$T/qdrant.log" || fail "no delete was sent"
note "retention pruned notes to $(ids notes), and Qdrant to $(points notes); keep's point stayed"
stop_agentd || fail "agentd did not stop cleanly"
