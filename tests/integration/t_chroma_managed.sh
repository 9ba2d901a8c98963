# memory_store chromadb with CHROMADB_PERSIST_DIRECTORY and no url: agentd
# runs its own Chroma server on that directory (agentd.chromadb.command:
# here the npm cache's chroma), a child of its own on a loopback port; rows
# reach it; killed, it is started again and the rows go on arriving, once
# each; agentd's exit stops it (no orphan); the next agentd's server has
# the data of the last one; a SIGKILLed agentd takes it along.
. ./lib.sh
use_chroma
mkdir -p "$T/watched"
ticker_config "$T/watched" "memory_store: chromadb" "chromadb: {command: \"$CHROMA\"}"
export CHROMADB_PERSIST_DIRECTORY=$T/cdata
chroma() { ctl --json status | jget "d['chromadb']$1"; }
up() { [ "$(chroma "['chromadb']")" = up ]; }
pending_is() { [ "$(chroma "['memory_pending']")" = "$1" ]; }
child_pid() { chroma "['managed']['pid']"; }
DB=/tenants/default_tenant/databases/default_database
# chroma_rows: the ids Chroma has, on the managed server's port
chroma_rows() {
	CPORT=$(chroma "['managed']['port']")
	local id; id=$(CH "$DB/collections" | jget "d[0]['id']") || return 1
	CH "$DB/collections/$id/get" -d '{"include": []}' | jget "sorted(int(i) for i in d['ids'])"
}
local_rows() { for t in episodic procedural; do ctl --json memory ticker --type $t -n 10000 | jget "[m['id'] for m in d]"; done | python3 -c 'import json,sys; print(sorted(i for l in sys.stdin for i in json.loads(l)))'; }
same() { [ "$(chroma_rows)" = "$(local_rows)" ]; }

start_agentd
wait_until 90 up || fail "agentd's Chroma server did not come up: $(chroma "['last_error']"); $(tail -5 "$T/agentd.log")"
p1=$(child_pid)
[ "$(ps -o ppid= -p "$p1" | tr -d ' ')" = "$AGENTD_PID" ] || fail "the Chroma server $p1 is not agentd's child"
tr '\0' ' ' < "/proc/$p1/cmdline" | grep -qF "run --path $T/cdata --host 127.0.0.1 --port $(chroma "['managed']['port']")" ||
	fail "its command line: $(tr '\0' ' ' < "/proc/$p1/cmdline")"
grep -q "chroma\[$p1\]: .*Listening on 127.0.0.1" "$T/agentd.log" || { grep chroma "$T/agentd.log" | head -20; fail "its output is not in agentd's log"; }
note "agentd's own Chroma server: pid $p1, $(chroma "['managed']['path']"), its output in agentd's log"

kill -9 "$p1"
wait_until 60 sh -c "p=\$(AGENTD_SOCKET=$SOCK $B/agentctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"chromadb\"][\"managed\"][\"pid\"])'); [ \"\$p\" != 0 ] && [ \"\$p\" != $p1 ]" ||
	fail "not started again"
p2=$(child_pid)
[ "$(chroma "['managed']['restarts']")" = 1 ] || fail "restarts: $(chroma "['managed']")"
wait_until 90 up || fail "not up again: $(chroma "['last_error']")"
ctl pause ticker > /dev/null
wait_until 60 pending_is 0 || fail "not shipped after the restart"
wait_until 30 same || fail "Chroma has $(chroma_rows), the outbox $(local_rows)"
n=$(chroma_rows | jget "len(d)")
note "killed: started again (pid $p2), every one of the $n rows in it once"

stop_agentd || fail "agentd's exit"
gone "$p2" || fail "agentd's exit left its Chroma server $p2 running"
grep -q "agentd's Chroma server (pid $p2) stopped" "$T/agentd.log" || fail "no word of stopping it"
note "agentd's exit stopped it"

start_agentd
wait_until 90 up || fail "the next agentd's Chroma server did not come up"
p3=$(child_pid)
wait_until 30 same || fail "the next server has $(chroma_rows), the outbox $(local_rows)"
[ "$(chroma_rows | jget "len(d)")" = "$n" ] || fail "rows lost or added across the restart"
note "the next agentd's server (pid $p3) has the $n rows of the last"
kill_agentd
wait_until 30 gone "$p3" || fail "a SIGKILLed agentd left its Chroma server $p3 running"
note "a SIGKILLed agentd takes it along (no orphan)"

sed -i "s|command: \"$CHROMA\"|command: no-such-chroma|" "$T/agents.yaml"
out=$(timeout 20 "$B/agentd" -c "$T/agents.yaml" 2>&1); rc=$?
[ $rc = 1 ] || fail "agentd without its Chroma executable exited $rc"
echo "$out" | grep -qF "agentd.chromadb.command no-such-chroma: not an executable on agentd's PATH" || fail "no reason: $out"
note "no such Chroma executable: agentd does not start, and says why"
exit 0
