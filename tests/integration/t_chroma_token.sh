# agentd.chromadb's token (token_env, token_file) is one of agentd's
# secrets: a model that says it has it redacted in the events, the memory
# and what goes to Chroma; a token_file that cannot be read stops agentd's
# start with the reason.  (The server here takes any request: the token's
# use as a bearer token is not checked by it.)
. ./lib.sh
use_chroma
chroma_start
TOK=chroma-tok-ZZZZ9999zzzz
cat > "$T/script.json" <<JSON
{"leak": [{"body": {"openai_text": "the chroma token is $TOK, really"}}]}
JSON
start_fakemodel
{ header; cat <<YAML
  leak:
    model_config: {provider: openai, model: fake, base_url: "http://127.0.0.1:$PORT/leak/v1", api_key_env: AGENTD_T_KEY}
    task_config: {query: "say it"}
    local_tools: []
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: chromadb\n  chromadb: {url: \"http://127.0.0.1:$CPORT\", token_env: CHROMA_T_TOKEN}|" "$T/agents.yaml"
export AGENTD_T_KEY=sk-t-chroma-token CHROMA_T_TOKEN=$TOK
start_agentd
wait_until 10 all_idle || fail "workers did not come up"
ctl run leak > /dev/null
wait_until 20 sh -c "[ \"\$($B/agentctl -s $SOCK --json status leak | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"run_count\"])')\" = 1 ]" || fail "leak did not run"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status | grep -q '\"memory_pending\": 0'" || fail "not shipped"
DB=/tenants/default_tenant/databases/default_database
id=$(CH "$DB/collections" | jget "d[0]['id']")
CH "$DB/collections/$id/get" -d '{"include": ["documents"]}' > "$T/in_chroma"
grep -qF "the chroma token is [redacted], really" "$T/in_chroma" || fail "the answer is not in Chroma, redacted: $(cat "$T/in_chroma")"
{ events_json; ctl --json memory leak -n 100; ctl --json status; cat "$T/agentd.log" "$T"/state/agentd.db*; cat "$T/in_chroma"; } > "$T/exits" 2>&1
grep -aqF "$TOK" "$T/exits" && fail "the token leaked: $(grep -aoF -- "$TOK" "$T/exits" | head -2)"
note "the token is redacted in events, memory, status, the log, the db and Chroma"
stop_agentd

sed -i "s|token_env: CHROMA_T_TOKEN|token_file: $T/no-such-token|" "$T/agents.yaml"
out=$(timeout 20 "$B/agentd" -c "$T/agents.yaml" 2>&1); rc=$?
[ $rc = 1 ] || fail "agentd with an unreadable token_file exited $rc"
echo "$out" | grep -qF "agentd.chromadb.token_file $T/no-such-token: No such file or directory" || fail "no reason: $out"
note "an unreadable token_file: agentd does not start, and says why"
exit 0
