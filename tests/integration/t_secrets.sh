# Every secret agentd knows, echoed back every way it could be, and looked
# for at every exit.  The secrets: a model key from api_key_env, one from
# api_key_file, one from OPENAI_API_KEY (the provider's default variable),
# the Redis password (a real redis-server requiring it), an MCP bearer
# header, an env value marked secret, the password in database_url.  The
# echoes: the loopback provider quotes the key it got in a 401 and in a
# final answer, and calls a tool named with it; the model puts the key in
# a tool's arguments and every tool's output in its answer; MCP servers
# (tests/mcp/echoserver.py) answer with the request's headers and their
# environment, print the secret env value on stderr, in log notifications
# and as their last words; text cut to a bound (a provider's message,
# a line of a worker's stderr) with a secret across the cut.  The exits:
# agentd's output, events, status,
# memory of every type, the SQLite files, every Redis key (and its AOF),
# PostgreSQL's agentd_memory.  Also: the tool got the real value, and no
# model key reaches an MCP server's environment.
. ./lib.sh

KEY_A=sk-envkey-AAAA1111aaaa KEY_B=sk-filekey-BBBB2222bbbb KEY_C=sk-default-CCCC3333cccc
RPW=redis-pw-RRRR4444rrrr TOKEN=tok-bearer-HHHH5555hhhh ENVSEC=envsecret-EEEE6666eeee
PGPW=pg-pw-PPPP7777pppp
SECRETS="$KEY_A $KEY_B $KEY_C $RPW $TOKEN $ENVSEC $PGPW"
ECHO=$(cd ../mcp && pwd)/echoserver.py

x() { python3 -c "print('x' * $1, end='')"; }
# Tool errors that the worker logs, longer than the 1023 bytes agentd keeps
# of a stderr line, the Redis password (which the worker does not know)
# where the cut falls, give or take the width of the line's prefix.
CUTS=$(for n in $(seq 905 935); do printf ', ["echo", {"text": "fail:%s%s tail"}]' "$(x $n)" "$RPW"; done)
# And the bearer token (which only the worker's set has from agentd's
# secrets.redact) across the 4096-byte cut of a tool_call_result's output.
CUTS="$CUTS, [\"echo\", {\"text\": \"$(x 4058)$TOKEN tail\"}]"
cat > "$T/script.json" <<JSON
{
 "leak": [{"body": {"openai_calls": [["echo", {"text": "key %API_KEY% here"}], ["environ", {}],
                                      ["headers", {}], ["%API_KEY%", {}]$CUTS, ["crash", {}]]}},
          {"body": {"openai_text": "key %API_KEY%, redis $RPW, pg $PGPW, theirs $KEY_B; tools: %TOOL_RESULTS%"}}],
 "deny": [{"status": 401, "body": {"error": {"message": "Incorrect API key provided: %API_KEY%. Not $KEY_A, $TOKEN, $ENVSEC either (redis $RPW)$(x 120)%API_KEY% end",
                                             "type": "invalid_request_error", "code": "invalid_api_key"}}}],
 "default": [{"body": {"openai_text": "my key is %API_KEY%$(x 262033)%API_KEY% end $(x 100)"}}]
}
JSON
# (The "default" answer is over a memory item's 256 KiB, its key across
# the cut, which the worker makes: it must redact before it cuts.)
start_fakemodel
FPORT=$PORT
printf '%s\n' "$KEY_B" > "$T/key_b"
python3 "$ECHO" --http "$T/web.port" > "$T/web.log" 2>&1 &
WEB=$!
at_exit 'kill $WEB'
wait_until 5 test -s "$T/web.port" || fail "the HTTP echo server did not start"

use_redis
export REDISCLI_AUTH=$RPW	# for R and redis_start's ping
redis_start --requirepass "$RPW"
PG=1
use_pg || PG=0
[ $PG = 1 ] && pg_start
# The database is named after the password too: PostgreSQL's "does not
# exist" quotes it, in agentd's status and log, until it is created.
DB_URL="postgresql://postgres:$PGPW@127.0.0.1:${PGPORT:-5432}/$PGPW"

config() { # MEMORY_STORE
	{ header; cat <<YAML
  a_env:
    system_instruction: "You echo."
    model_config: {provider: openai, model: fake, base_url: "http://127.0.0.1:$FPORT/leak/v1", api_key_env: AGENT_A_KEY}
    task_config: {query: "Echo it all"}
    local_tools: []
    env:
      SECRET_ENV: {value: "$ENVSEC", secret: true}
      SHORT_ENV: {value: "tiny", secret: true}
    mcp_tools:
      - {name: echo, transport_type: stdio, command: python3, args: ["$ECHO", "--show", "SECRET_ENV"], env: {ECHO_LOG: "$T/echo.log"}}
      - {name: web, transport_type: streamable_http, url: "http://127.0.0.1:$(cat "$T/web.port")/mcp", headers: {Authorization: "Bearer $TOKEN", User-Agent: agentd-secrets-test}}
  a_file:
    model_config: {provider: openai, model: fake, base_url: "http://127.0.0.1:$FPORT/deny/v1", api_key_file: "$T/key_b"}
    task_config: {query: "hello"}
    local_tools: []
    max_retries: 0
  a_default:
    model_config: {provider: openai, model: fake, base_url: "http://127.0.0.1:$FPORT/default/v1"}
    task_config: {query: "hello"}
    local_tools: []
YAML
	} | write_config
	sed -i "s|^agentd:|agentd:\n  event_store: redis_stream\n  memory_store: $1\n  database_url: \"$DB_URL\"\n  redis: {port: $PORT, password: \"$RPW\"}|" "$T/agents.yaml"
}
export AGENT_A_KEY=$KEY_A OPENAI_API_KEY=$KEY_C

done_run() { # agent: its last run finished (completed, or failed for good)
	events_json "$1" | jget "any(e['type']=='background_task_completed' or (e['type']=='background_task_error' and not e['payload']['will_retry']) for e in d)" | grep -qx true
}
run_all() {
	for a in a_env a_file a_default; do ctl run $a >/dev/null || fail "run $a"; done
	for a in a_env a_file a_default; do wait_until 30 done_run $a || fail "$a did not finish"; done
}
# exits FILE [pg]: everything agentd let out, in one file to grep.
exits() {
	{ cat "$T/agentd.log"
	  events_json
	  ctl --json status
	  for a in a_env a_file a_default; do
		ctl --json status $a
		for t in working episodic long_term procedural; do ctl --json memory $a --type $t -n 1000; done
	  done
	  cat "$T"/state/agentd.db*
	  for k in $(R --scan); do
		case $(R type "$k") in
		stream) R XRANGE "$k" - + ;; list) R LRANGE "$k" 0 -1 ;; hash) R HGETALL "$k" ;; string) R GET "$k" ;;
		esac
	  done
	  cat "$T"/appendonlydir/*
	  [ "${2:-}" = pg ] && psql "$DB_URL" -tAq -c "select * from agentd_memory" 2>&1
	} > "$1" 2>&1
}
no_secret_in() { # FILE WHAT: not a secret, nor its first 12 bytes (left by a cut)
	for s in $SECRETS; do
		s=${s:0:12}
		grep -aq -- "$s" "$1" && fail "$s... leaked into $2: $(grep -ao -- ".\{0,80\}$s.\{0,40\}" "$1" | head -3)"
	done
	return 0
}
shipped() { outbox_is pending -eq 0 && outbox_is memory_pending -eq 0; }

# ---- Redis memory and the event stream ---------------------------------------
config redis
start_agentd
wait_until 15 all_idle || fail "workers not idle"
run_all
wait_until 15 shipped || fail "Redis outbox not drained: $(ctl --json status | jget "d['outbox']")"

ev() { events_json "$1" | jget "[e['payload'] for e in d if e['type']=='$2']"; }
ev a_env background_task_completed | jget "d[-1]['result']['answer']" > "$T/answer"
for want in "key [redacted], redis [redacted], pg [redacted], theirs [redacted]" "Bearer [redacted]" \
	"token: [redacted]" "SECRET_ENV=[redacted]" 'key [redacted] here' 'agentd-secrets-test'; do
	grep -qF -- "$want" "$T/answer" || fail "a_env's answer lacks '$want': $(cut -c1-300 "$T/answer")"
done
ev a_env tool_call_result | grep -qF 'Bearer [redacted]' || fail "headers' output not in the tool_call_result"
ev a_env mcp_server_status | grep -qF 'giving up with SECRET_ENV=[redacted]' || fail "the crashed server's last words"
ev a_file background_task_error | jget "d[-1]['error']" |
	grep -qF "openai HTTP 401: Incorrect API key provided: [redacted]. Not [redacted], [redacted], [redacted] either (redis [redacted])xxx" ||
	fail "a_file's error: $(ev a_file background_task_error)"
ev a_file background_task_error | jget "d[-1]['error']" | grep -qE 'xxx\[redacted\] end$' ||
	fail "a_file's error, cut at 300 bytes: $(ev a_file background_task_error)"
grep -q "tool echo failed after [0-9]* ms: xxx" "$T/agentd.log" || fail "no long tool error in agentd's log"
field a_file last_error | grep -qF "provided: [redacted]. Not [redacted], [redacted], [redacted] either" || fail "a_file's last_error: $(field a_file last_error)"
ev a_default background_task_completed | jget "d[-1]['result']['answer'].startswith('my key is [redacted]x') and 'x[redacted] end x' in d[-1]['result']['answer']" |
	grep -qx true ||
	fail "a_default's answer: $(ev a_default background_task_completed)"
ctl --json memory a_env --type procedural | jget "d[-1]['content']" | grep -qF "echo -> environ -> headers -> [redacted] -> echo -> echo" ||
	fail "procedural memory: $(ctl --json memory a_env --type procedural)"
ctl --json memory a_env | grep -qF "redis [redacted]" || fail "episodic memory: $(ctl --json memory a_env | cut -c1-300)"
ctl --json memory a_default | jget "[m['content'][-40:] for m in d if m['role'] == 'assistant'][-1]" | grep -qF "[truncated " ||
	fail "a_default's long answer not cut in memory"
grep -qF "Incorrect API key provided: [redacted]" "$T/agentd.log" || fail "the 401 is not in agentd's log"
grep -qF "SECRET_ENV=[redacted]" "$T/agentd.log" || fail "the MCP server's stderr is not in agentd's log"
grep -qF "an env value marked secret is shorter than 10 bytes: too short to redact" "$T/agentd.log" ||
	fail "no warning for a secret too short to redact"
R XRANGE background_agent_events - + | grep -qF "redis [redacted]" || fail "the answer is not in the Redis stream"
R LRANGE "agentd:{a_env}:memory:episodic" 0 -1 | grep -qF "redis [redacted]" || fail "the answer is not in Redis memory"
note "every secret echoed back came out as [redacted] in events, memory, status, the log and Redis"

# What the servers and the tool saw was real.
grep -qF "\"key $KEY_A here\"" "$T/echo.log" || fail "the tool did not get what the model sent: $(cat "$T/echo.log")"
python3 - "$T/requests.log" "$ENVSEC" <<'PY' || fail "an MCP server's environment"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["scenario"] == "leak"]
env = json.loads([m["content"] for m in reqs[1]["body"]["messages"] if m["role"] == "tool"][1])["text"]
names = [l.split("=", 1)[0] for l in env.splitlines()]
assert "SECRET_ENV=" + sys.argv[2] in env.splitlines(), "the secret env value did not reach the server"
for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENT_A_KEY", "REDIS_PASSWORD", "REDISCLI_AUTH"):
    assert k not in names, k + " is in an MCP server's environment"
PY
note "the tool got the key the model sent; no model key in an MCP server's environment"

exits "$T/exits.a"
no_secret_in "$T/exits.a" "an exit (log, events, status, memory, SQLite, Redis)"
stop_agentd || fail "agentd did not stop"

# ---- PostgreSQL memory --------------------------------------------------------
[ $PG = 1 ] || skip "no PostgreSQL server on this machine: every exit checked but agentd_memory"
config database
start_agentd
pg_error() { ctl --json status | jget "d['postgresql']['last_error']" | grep -qF 'database "[redacted]" does not exist'; }
wait_until 15 pg_error || fail "PostgreSQL's error in status: $(ctl --json status | jget "d['postgresql']")"
psql "postgresql://postgres@127.0.0.1:$PGPORT/postgres" -q -c "create database \"$PGPW\"" || fail "createdb"
wait_until 15 all_idle || fail "workers not idle (PostgreSQL phase)"
run_all
pg_drained() { [ "$(ctl --json status | jget "d['postgresql']['memory_pending']")" = 0 ]; }
wait_until 15 pg_drained || fail "PostgreSQL outbox not drained"
psql "$DB_URL" -tAq -c "select content from agentd_memory where agent='a_env' and memory_type='episodic'" |
	grep -qF "redis [redacted]" || fail "the answer is not in agentd_memory"
exits "$T/exits.b" pg
no_secret_in "$T/exits.b" "an exit (PostgreSQL included)"
note "agentd_memory holds the answers redacted"
exit 0
