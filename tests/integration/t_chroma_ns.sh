# memory_store chromadb: an agent's ranking in Chroma is its own.  All
# agents of a model share a collection, so the agent filter is the `where`
# agentd sends: ticker's many rows, each nearer the query than one's only
# row, take none of the places of one's vector-only recall (Chroma returns
# at most the candidates asked for: without the filter they would all be
# ticker's, and one would get none).
. ./lib.sh
use_chroma
chroma_start
mkdir -p "$T/watched"
{ header; cat <<YAML
  ticker:
    task_config: {tool: new_files, directories: ["$T/watched"]}
    interval: 100ms
  one:
    task_config: {tool: remember, content: "a note", memory_type: long_term}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  memory_store: chromadb\n  chromadb: {url: \"http://127.0.0.1:$CPORT\"}|" "$T/agents.yaml"
chroma() { ctl --json status | jget "d['chromadb']['$1']"; }
pending_is() { [ "$(chroma memory_pending)" = "$1" ]; }
rows() { ctl --json memory "$1" -n 1000 | jget "len(d)"; }

start_agentd
wait_until 60 sh -c "[ \$(AGENTD_SOCKET=$SOCK $B/agentctl --json memory ticker -n 1000 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') -ge 120 ]" ||
	fail "ticker did not write 120 rows"
ctl pause ticker > /dev/null
ctl run one > /dev/null
wait_until 20 sh -c "[ \"\$(AGENTD_SOCKET=$SOCK $B/agentctl --json memory one --type long_term)\" != '[]' ]" || fail "one did not remember"
wait_until 60 pending_is 0 || fail "not shipped: $(chroma last_error)"
q="new_files scanned directories count a note"
ctl --json memory ticker --query "$q" --rank vector | jget "len(d['hits']) > 0 and not d['degraded']" | grep -qx true || fail "ticker's own recall"
s0=$(chroma searches)
own=$(for t in episodic long_term; do ctl --json memory one --type $t | jget "[m['id'] for m in d]"; done | python3 -c 'import json,sys; print(sorted(i for l in sys.stdin for i in json.loads(l)))')
got=$(ctl --json memory one --query "$q" --rank vector -n 10)
echo "$got" | jget "not d['degraded'] and sorted(h['id'] for h in d['hits']) == $own" | grep -qx true ||
	fail "one's vector recall among $(rows ticker) rows of ticker: $got"
[ "$(chroma searches)" = $((s0 + 1)) ] || fail "not Chroma's answer"
note "one's vector recall from Chroma, beside $(rows ticker) rows of ticker: its own rows $own"
exit 0
