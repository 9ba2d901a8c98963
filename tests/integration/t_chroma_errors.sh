# memory_store chromadb when Chroma refuses: a collection of agentd's name
# made by someone else for 3 dimensions refuses our 384 -- status says so in
# Chroma's words (HTTP 400, its error and message), the rows wait in the
# outbox, recall falls back to the embedded index, degraded, with that
# reason; once the collection is gone, agentd makes its own and ships every
# row once.  A server that is not there at start: down, with why, until it
# comes.
. ./lib.sh
use_chroma
mkdir -p "$T/watched"
ticker_config "$T/watched" "memory_store: chromadb" "chromadb: {url: \"http://127.0.0.1:$CPORT\"}"
chroma() { ctl --json status | jget "d['chromadb']['$1']"; }
pending_is() { [ "$(chroma memory_pending)" = "$1" ]; }
error_has() { chroma last_error | grep -qF "$1"; }
DB=/tenants/default_tenant/databases/default_database
NAME=agentd-hash_hash-v1_384-384

start_agentd
wait_until 30 error_has "Couldn't connect" || fail "no reason while Chroma is not there: $(chroma last_error)"
[ "$(chroma chromadb)" = down ] || fail "up without a server"
note "no server at start: down, $(chroma last_error)"

# The wrong collection is there before agentd comes to this server.
stop_agentd || fail "agentd's exit without Chroma"
chroma_start
id=$(CH "$DB/collections" -d "{\"name\": \"$NAME\"}" | jget "d['id']") || fail "could not make the collection"
CH "$DB/collections/$id/add" -d '{"ids": ["x"], "embeddings": [[1, 0, 0]]}' > /dev/null
start_agentd
wait_until 30 error_has "HTTP 400: InvalidArgumentError: Collection expecting embedding with dimension of 3, got 384" ||
	fail "no clear error for the wrong dimension: $(chroma last_error)"
[ "$(chroma memory_pending)" -gt 0 ] || fail "no rows pending"
q=$(ctl --json memory ticker --query "new_files")
echo "$q" | jget "d['degraded'] == True and 'dimension of 3, got 384' in d['reason'] and len(d['hits']) > 0" | grep -qx true ||
	fail "recall against the wrong collection: $q"
note "a 3-dimension collection: $(chroma last_error); recall degraded with it"

ctl pause ticker > /dev/null
CH "$DB/collections/$NAME" -X DELETE > /dev/null
wait_until 60 pending_is 0 || fail "not shipped once the collection went: $(chroma last_error)"
local_ids=$(ctl --json memory ticker -n 1000 | jget "sorted(m['id'] for m in d)")
id=$(CH "$DB/collections" | jget "[c['id'] for c in d if c['name'] == '$NAME'][0]")
got=$(CH "$DB/collections/$id/get" -d '{"include": []}' | jget "sorted(int(i) for i in d['ids'])")
[ "$got" = "$local_ids" ] || fail "Chroma has $got, the outbox shipped $local_ids"
[ "$(chroma chromadb)" = up ] && [ "$(chroma last_error)" = null ] || fail "not up again: $(chroma last_error)"
chroma last_failure | jget "d['error'].startswith('upserting') and d['until'] is not None" | grep -qx true || fail "last_failure: $(chroma last_failure)"
ctl --json memory ticker --query "new_files" | jget "d['degraded']" | grep -qx false || fail "recall still degraded"
note "the collection gone: agentd made its own and shipped every row once"
exit 0
