# Embeddings from an OpenAI-compatible endpoint (the loopback stand-in,
# tests/fakemodel.py, vectors from tests/embed_fixture.json): rows are
# committed, then embedded in batches (encoding_format float asked, base64
# answers read too), so recall finds a row by meaning that shares no word
# with the query; 429 is waited out as Retry-After says and 500 retried;
# an answer of the wrong dimension is refused with the reason and stores
# nothing; with the endpoint down, recall answers by words with degraded
# and why; the key is sent, and never shown, even when the server quotes
# it; no agent's query reaches another's rows.
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{
 "e_float": [{"embed": true}],
 "e_b64": [{"embed": "base64"}],
 "e_429": [{"status": 429, "headers": {"retry-after": "2"}, "body": {"error": {"message": "Rate limit reached for text-embedding-3-small", "type": "requests", "code": "rate_limit_exceeded"}}},
           {"embed": true}],
 "e_500": [{"status": 500, "body": {"error": {"message": "The server had an error", "type": "server_error"}}}, {"embed": true}],
 "e_dim": [{"embed": true, "dims": 7}],
 "e_slow": [{"embed": true, "delay": 1}],
 "e_hang": [{"hang": true}],
 "e_401": [{"status": 401, "body": {"error": {"message": "Incorrect API key provided: sk-emb-SECRET-0123456789", "type": "invalid_request_error", "code": "invalid_api_key"}}}]
}
JSON
start_fakemodel
DOWN=$(free_port)	# nothing listens there
agent() { # name, url, [extra embeddings keys]
	cat <<YAML
  $1:
    task_config: {tool: remember, memory_type: long_term}
    memory_config:
      embeddings: {provider: openai, base_url: "$2", api_key_env: AGENTD_T_EKEY, dimensions: 8${3:+, $3}}
YAML
}
{ header
  agent flt "http://127.0.0.1:$PORT/e_float/v1" "batch_size: 2"
  agent b64 "http://127.0.0.1:$PORT/e_b64/v1"
  agent r429 "http://127.0.0.1:$PORT/e_429/v1"
  agent r500 "http://127.0.0.1:$PORT/e_500/v1"
  agent dim "http://127.0.0.1:$PORT/e_dim/v1"
  agent down "http://127.0.0.1:$DOWN/v1"
  agent leak "http://127.0.0.1:$PORT/e_401/v1"
  agent slow "http://127.0.0.1:$PORT/e_slow/v1"
  agent hang "http://127.0.0.1:$PORT/e_hang/v1" "request_timeout: 1s"
} | write_config
export AGENTD_T_EKEY=sk-emb-SECRET-0123456789
start_agentd
wait_until 10 all_idle || fail "workers did not come up"

has_fact() { ctl --json memory "$1" --type long_term -n 100 | grep -qF "$2"; }
remember() { # agent, content
	python3 ../ctlclient.py "$SOCK" request "{\"cmd\": \"run\", \"agent\": \"$1\", \"args\": {\"kwargs\": {\"content\": \"$2\"}}}" |
		jget "d['ok']" | grep -qx true || fail "run $1"
	wait_until 10 has_fact "$1" "$2" || fail "$1 did not remember: $2"
}
for a in flt b64 r429 r500 dim down leak; do
	remember $a "no space left on /var"
	remember $a "the weekly report went out"
	remember $a "replica lag on db1 is 40 s"
done
embedder() { # agent's embeddings scenario -> its status
	ctl --json status | jget "[e for e in d['memory']['embeddings'] if '$1' in (e.get('url') or '')][0]"
}
embedded() { [ "$(embedder "$1" | jget "d['embedded']")" -ge "$2" ]; }
query() { ctl --json memory "$1" --query "disk full" --type long_term -n 3; }
reqs() { python3 -c "import json,sys; print(json.dumps([json.loads(l) for l in open('$T/requests.log') if json.loads(l)['scenario']=='$1']))"; }

# Float: batches of batch_size, the request as OpenAI documents it, the key
# sent; recall by meaning ("disk full" shares no word with the row).
wait_until 20 embedded e_float 6 || fail "rows not embedded: $(embedder e_float)"
reqs e_float | jget "all(r['path']=='/e_float/v1/embeddings' and r['body']['encoding_format']=='float' and r['body']['model']=='text-embedding-3-small' and r['body']['dimensions']==8 and 1 <= len(r['body']['input']) <= 2 and r['headers']['authorization']=='Bearer sk-emb-SECRET-0123456789' for r in d)" |
	grep -qx true || fail "embedding requests: $(reqs e_float | head -c 600)"
embedder e_float | jget "d['state']=='ok' and d['dimensions']==8 and d['model']=='openai:text-embedding-3-small/8'" | grep -qx true ||
	fail "status: $(embedder e_float)"
query flt | jget "d['degraded']==False and d['hits'][0]['content']=='no space left on /var' and d['hits'][0]['similarity'] > 0.9" |
	grep -qx true || fail "recall by meaning: $(query flt)"
note "float vectors in batches of batch_size; recall by meaning"

# base64 answers read as little-endian float32
wait_until 20 embedded e_b64 6 || fail "base64 rows not embedded: $(embedder e_b64)"
query b64 | jget "d['degraded']==False and d['hits'][0]['content']=='no space left on /var' and d['hits'][0]['similarity'] > 0.9" |
	grep -qx true || fail "recall with base64 vectors: $(query b64)"
note "base64 answers read"

# 429 waited out for its Retry-After (longer than the first backoff), 500
# retried after a backoff
wait_until 30 embedded e_429 6 || fail "rows not embedded after the 429: $(embedder e_429)"
reqs e_429 | jget "d[1]['t'] - d[0]['t'] >= 1.95" | grep -qx true || fail "Retry-After (2 s, over the first backoff) not waited out"
wait_until 30 embedded e_500 6 || fail "rows not embedded after the 500: $(embedder e_500)"
reqs e_500 | jget "d[1]['t'] - d[0]['t'] >= 0.9" | grep -qx true || fail "a 500 retried without a backoff"
for s in e_429 e_500; do
	embedder $s | jget "d['state']=='ok' and d['last_error'] is None" | grep -qx true || fail "$s: $(embedder $s)"
done
grep -q "embeddings from http://127.0.0.1:$PORT/e_429/v1/embeddings failing: HTTP 429: Rate limit reached" "$T/agentd.log" ||
	fail "the 429 was not logged"
note "429 waited out as Retry-After said, 500 retried"

# A vector of the wrong dimension: refused, said, nothing stored; recall by words, degraded.
wait_until 10 sh -c "$B/agentctl -s $SOCK --json status | grep -q '7-dimensional'" || fail "the wrong dimension was not reported"
embedder e_dim | jget "d['state']=='failing' and 'has 8' in d['last_error'] and d['embedded']==0" | grep -qx true ||
	fail "wrong dimension status: $(embedder e_dim)"
python3 -c "import sqlite3; c=sqlite3.connect('file:$T/state/agentd.db?mode=ro', uri=True); print(c.execute(\"select count(*) from memory_vec v join memory m on m.id=v.id where m.agent='dim'\").fetchone()[0])" |
	grep -qx 0 || fail "vectors of the wrong dimension were stored"
q=$(ctl --json memory dim --query "db1 replica" --type long_term)
echo "$q" | jget "d['degraded']==True and 'dimension' in d['reason'] and d['hits'][0]['content']=='replica lag on db1 is 40 s'" |
	grep -qx true || fail "recall with a wrong-dimension endpoint: $q"
note "a wrong dimension refused with the reason, recall by words"

# The endpoint down: recall answers at once by words, degraded, with why.
q=$(ctl --json memory down --query "replica lag" --type long_term)
echo "$q" | jget "d['degraded']==True and d['reason'] and d['hits'][0]['content']=='replica lag on db1 is 40 s'" |
	grep -qx true || fail "recall with the endpoint down: $q"
ctl memory down --query "replica lag" 2>&1 >/dev/null | grep -q "ranked by words alone" || fail "agentctl did not say the answer is degraded"
embedder "127.0.0.1:$DOWN" | jget "d['state']=='failing' and bool(d['last_error'])" | grep -qx true ||
	fail "a down endpoint is not shown failing: $(embedder "127.0.0.1:$DOWN")"
note "endpoint down: degraded recall by words, the reason given"

# The key: in the header only; a 401 quoting it shows and logs it redacted.
wait_until 10 sh -c "$B/agentctl -s $SOCK --json status | grep -q 'HTTP 401'" || fail "the 401 was not reported"
embedder e_401 | jget "d['last_error']" | grep -q "Incorrect API key provided: \[redacted\]" || fail "401 error: $(embedder e_401)"
ctl --json status > "$T/status.json"
grep -q "sk-emb-SECRET" "$T/status.json" "$T/agentd.log" && fail "the embeddings key leaked"
note "the key redacted from what the server quoted"

# A query waiting for its vector (1 s) answers before the requests sent
# after it on the same connection; one whose client left meanwhile is
# dropped; one whose endpoint never answers gives up at request_timeout.
remember slow "replica lag on db1 is 40 s"
python3 - "$SOCK" <<'PY' || fail "answers out of order while a recall waited"
import sys; sys.path.insert(0, "..")
import ctlclient
s = ctlclient.connect(sys.argv[1])
s.sendall(ctlclient.frame({"t": "request", "cmd": "memory", "agent": "slow",
                           "args": {"query": "db1 replica", "limit": 3}}) +
          ctlclient.frame({"t": "request", "cmd": "status"}))
first, second = ctlclient.read_frame(s), ctlclient.read_frame(s)
assert "hits" in first["data"] and not first["data"]["degraded"], first
assert "agents" in second["data"], second
gone = ctlclient.connect(sys.argv[1])
gone.sendall(ctlclient.frame({"t": "request", "cmd": "memory", "agent": "slow",
                              "args": {"query": "anything", "limit": 3}}))
gone.close()
PY
sleep 1.5	# the abandoned recall's vector comes back to no one
ctl status >/dev/null || fail "agentd does not answer after a client left mid-recall"
# The same over HTTP: the connection waits suspended for the vector; a
# client that leaves meanwhile is cancelled (under ASan, a use after free if not).
[ "$(hcode '/v1/agents/slow/memory?query=db1%20replica&limit=3')" = 200 ] || fail "HTTP recall: $(hbody)"
hbody | jget "d['degraded']==False and 'db1' in d['hits'][0]['content']" | grep -qx true || fail "HTTP recall: $(hbody)"
curl -s -o /dev/null --max-time 0.3 --unix-socket "$HTTP_SOCK" 'http://agentd/v1/agents/slow/memory?query=anything' && fail "the endpoint did not wait"
sleep 1.5
[ "$(hcode /v1/status)" = 200 ] || fail "agentd's HTTP does not answer after a client left mid-recall"
q=$(ctl --json memory hang --query "db1" --type long_term)
echo "$q" | jget "d['degraded']==True and 'timed out' in d['reason']" | grep -qx true || fail "a hung endpoint: $q"
note "a waiting recall keeps the connection's order, a client that left is no harm, a hung endpoint times out"

# Isolation: the same texts in every agent, each query answered from its own.
for a in flt b64; do
	ctl --json memory $a --query "space weekly replica" -n 50 --type long_term | jget "len(d['hits'])" | grep -qx 3 ||
		fail "$a's query did not stay within its own rows: $(ctl --json memory $a --query 'space weekly replica' -n 50 --type long_term)"
done
note "each agent's query answered from its own rows"

# Rows without vectors when agentd starts (here: flt's, taken out while it
# was down) are embedded in batches of batch_size.
stop_agentd || fail "agentd did not stop cleanly"
python3 -c "import sqlite3; c=sqlite3.connect('$T/state/agentd.db'); c.execute(\"delete from memory_vec where id in (select id from memory where agent='flt')\"); c.commit()"
before=$(reqs e_float | jget "len(d)")
start_agentd
wait_until 20 sh -c "$B/agentctl -s $SOCK --json status | python3 -c \"import json,sys; e=[e for e in json.load(sys.stdin)['memory']['embeddings'] if 'e_float' in (e.get('url') or '')][0]; sys.exit(e['embedded'] < 6)\"" ||
	fail "flt's rows were not embedded again: $(embedder e_float)"
reqs e_float | jget "[len(r['body']['input']) for r in d[$before:]]" | grep -qx '\[2, 2, 2\]' ||
	fail "not batches of batch_size 2: $(reqs e_float | jget "[len(r['body']['input']) for r in d[$before:]]")"
query flt | jget "d['degraded']==False and d['hits'][0]['content']=='no space left on /var'" | grep -qx true ||
	fail "recall after embedding again: $(query flt)"
note "rows without vectors at start embedded in batches of batch_size"

# agentd stopping while an HTTP recall waits for its vector: it stops
# cleanly (libmicrohttpd may not stop with a connection suspended).
curl -s -o /dev/null --max-time 20 --unix-socket "$HTTP_SOCK" 'http://agentd/v1/agents/slow/memory?query=lag' &
cpid=$!
sleep 0.4
stop_agentd || fail "agentd did not stop cleanly with a recall waiting over HTTP"
wait $cpid
note "stopped cleanly with an HTTP recall waiting"
exit 0
