# memory_store qdrant refused by the Qdrant stand-in: a collection of the
# name agentd wants with another vector size is not written to (status says
# what it has and what the model gives; the rows wait; recall is degraded,
# saying why); a wrong api-key (here from api_key_file) is Qdrant's 403,
# shown as such, and the key is never shown; a key with a line break in it
# is refused by agentd, never sent as a header.
. ./lib.sh

QKEY=qk-t-refused-0123456789
start_qdrant --api-key "$QKEY"
COLL=agentd_hash_hash-v1_384
Q PUT "/collections/$COLL" '{"vectors": {"size": 8, "distance": "Cosine"}}' | grep -q '"result": true' ||
	fail "the stand-in did not make the collection"
{ header; cat <<YAML
  notes:
    task_config: {tool: remember, content: "the deploy of web3 needs the disk of nas2", memory_type: long_term}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: qdrant\n  qdrant: {port: $QPORT, api_key_env: AGENTD_T_QKEY}|" "$T/agents.yaml"
export AGENTD_T_QKEY=$QKEY
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

qd() { ctl --json status | jget "d['qdrant']['$1']"; }
runs_done() { [ "$(field notes run_count)" = "$1" ] && state_is notes idle; }
ctl run notes >/dev/null
wait_until 30 runs_done 1 || fail "the run did not end"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status | grep -q 'has vectors of size 8'" || fail "no refusal: $(ctl --json status | jget "d['qdrant']")"
qd last_error | grep -qF "collection $COLL has vectors of size 8 and distance Cosine, but its model gives 384-dimensional vectors compared by Cosine: refused, nothing shipped" ||
	fail "the refusal: $(qd last_error)"
[ "$(qd qdrant)" = down ] && [ "$(qd memory_pending)" -ge 1 ] || fail "status: $(ctl --json status | jget "d['qdrant']")"
grep -q '"path": "/collections/'"$COLL"'/points"' "$T/qdrant.log" && fail "points were sent to the collection of another size"
Q POST "/collections/$COLL/points/scroll" '{}' | jget "d['result']['points']" | grep -qx '\[\]' || fail "points in the collection of another size"
ctl --json memory notes --query "deploy web3" --type long_term | jget "[d['degraded'], 'has vectors of size 8' in d['reason'], len(d['hits'])]" |
	grep -qxF '[true, true, 1]' || fail "recall: $(ctl --json memory notes --query "deploy web3" --type long_term)"
note "a collection of size 8: refused with what it has, rows wait, recall degraded"
stop_agentd || fail "agentd did not stop"

# The wrong key, from a file: Qdrant's 403, and the key nowhere.
Q DELETE "/collections/$COLL" > /dev/null
echo "qk-wrong-key-0123456789" > "$T/qkey"
sed -i "s|api_key_env: AGENTD_T_QKEY|api_key_file: $T/qkey|" "$T/agents.yaml"
start_agentd
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status | grep -q 'HTTP 403: Invalid API key or JWT'" ||
	fail "a wrong key is not shown: $(ctl --json status | jget "d['qdrant']")"
tail -n 1 "$T/qdrant.log" | jget "d['headers']['api-key']" | grep -qx "qk-wrong-key-0123456789" || fail "the file's key was not sent"
{ ctl --json status; cat "$T/agentd.log"; } | grep -q "qk-wrong-key-0123456789" && fail "the key was shown"
note "a wrong api-key: $(qd last_error)"
stop_agentd || fail "agentd did not stop"

# A key that would break the header line: refused, nothing sent.
sed -i "s|api_key_file: $T/qkey|api_key_env: AGENTD_T_QKEY|" "$T/agents.yaml"
export AGENTD_T_QKEY="$(printf 'qk-t-refused\r\nX-Injected: 1')"
: > "$T/qdrant.log"
start_agentd
wait_until 10 all_idle || fail "workers did not come up"
[ "$(qd qdrant)" = "no key" ] || fail "status: $(ctl --json status | jget "d['qdrant']")"
qd last_error | grep -qx "agentd.qdrant's api-key holds a control character" || fail "last_error: $(qd last_error)"
[ -s "$T/qdrant.log" ] && fail "a request was sent: $(cat "$T/qdrant.log")"
note "a key with a line break: $(qd last_error)"
stop_agentd || fail "agentd did not stop"
