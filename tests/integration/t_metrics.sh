# GET /metrics and the probes against a live agentd with agents in every
# state the test can produce (idle, running, retrying, backoff, fatal,
# stopped, paused): `promtool check metrics` passes, every agent has one
# state row at 1 (one-hot over every state), and the values are what
# happened -- a completed run, a failed one, a timeout, a cancel, a skip,
# a retry, a restart, tokens and tool calls from a loopback model run, the
# run duration histogram cumulative through +Inf.  /readyz is 503 with
# what is not ready (a fatal agent, one backing off before it was ever up;
# a degraded store) and 200 once that is over.  On TCP /metrics wants the
# bearer token and /readyz does not.
. ./lib.sh

command -v promtool > /dev/null || skip "promtool missing (Debian prometheus; scripts/bootstrap installs it)"
command -v curl > /dev/null || fail "curl missing (scripts/bootstrap installs it)"

cat > "$T/script.json" <<'JSON'
{"tool": [{"body": {"openai_calls": [["system_info", {}]]}}, {"body": {"openai_text": "All fine."}}]}
JSON
start_fakemodel
export OPENAI_API_KEY=sk-test-metrics
TPORT=$(free_port)
TOKEN=tok-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$T/token"

hooks='env: {AGENTD_TEST_HOOKS: "1"}'
agents() {
	cat <<YAML
  ok:
    task_config: {tool: system_info}
  sleeper:
    task_config: {tool: test_sleep, args: {seconds: 3600}}
    $hooks
  slowpoke:
    task_config: {tool: test_sleep, args: {seconds: 3600}}
    run_timeout: 1s
    max_retries: 0
    $hooks
  broken:
    task_config: {tool: test_fail, args: {message: "no"}}
    max_retries: 0
    $hooks
  flaky:
    task_config: {tool: test_fail, args: {retryable: true, message: "upstream 503"}}
    max_retries: 2
    retry_delay: 1h
    $hooks
  quitter:
    task_config: {tool: test_exit, args: {code: 0}}
    restart: never
    $hooks
  dropper:
    task_config: {tool: test_crash}
    restart: {policy: always, stable_after: 0s}
    max_retries: 0
    $hooks
  idler:
    task_config: {tool: system_info}
  modeler:
    system_instruction: "You watch this machine."
    model_config: {provider: openai, model: fake-model, base_url: "http://127.0.0.1:$PORT/tool/v1", request_timeout: 10s}
    task_config: {query: "Check"}
    local_tools: [system_info]
YAML
}
doomed() {
	cat <<YAML
  crasher:
    task_config: {tool: system_info}
    restart: {policy: always, backoff: 100ms, max_backoff: 100ms, max_restarts: 0, window: 60s}
    env: {AGENTD_TEST_HOOKS: "1", AGENTD_TEST_CRASH_AT_START: SEGV}
  backer:
    task_config: {tool: system_info}
    restart: {policy: always, backoff: 1h, max_backoff: 1h, max_restarts: 5, window: 60s}
    env: {AGENTD_TEST_HOOKS: "1", AGENTD_TEST_CRASH_AT_START: SEGV}
YAML
}
listen() { sed -i "s|^agentd:|agentd:\n  http:\n    listen: [\"unix:$HTTP_SOCK\", \"127.0.0.1:$TPORT\"]\n    token_file: $T/token|" "$T/agents.yaml"; }
{ header; agents; doomed; } | write_config
listen
start_agentd

scrape() { [ "$(hcode /metrics)" = 200 ] && cp "$T/http.body" "$T/metrics.txt"; }
# mv 'NAME{LABELS}': the sample's value in the last scrape (empty: none).
mv() { awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.txt"; }
mv_is() { scrape && [ "$(mv "$1")" = "$2" ]; }

wait_until 20 state_is crasher fatal || fail "crasher not fatal: $(field crasher state)"
wait_until 20 state_is backer backoff || fail "backer not backing off: $(field backer state)"
for a in ok sleeper slowpoke broken flaky quitter dropper idler modeler; do
	wait_until 20 state_is $a idle || fail "$a not idle: $(field $a state)"
done

# /readyz: not ready, and why -- a fatal agent, one never up.
[ "$(hcode /readyz)" = 503 ] || fail "readyz with a fatal agent: $(hbody)"
hbody | jget "(d['ready'] == False and d['store'] == 'ok' and
    sorted((a['agent'], a['state']) for a in d['not_ready']) == [('backer', 'backoff'), ('crasher', 'fatal')])" |
	grep -qx true || fail "readyz does not say what is not ready: $(hbody)"
note "readyz 503: $(hbody)"

# What happens, one of each.
ctl run ok > /dev/null && ctl run broken > /dev/null && ctl run slowpoke > /dev/null &&
	ctl run flaky > /dev/null && ctl run quitter > /dev/null && ctl run dropper > /dev/null &&
	ctl run modeler > /dev/null && ctl run sleeper > /dev/null || fail "a run was refused"
wait_until 20 state_is sleeper running || fail "sleeper not running"
ctl run sleeper > /dev/null 2>&1	# overlap: skip -- the second is skipped
ctl pause idler > /dev/null || fail "pause idler"
wait_until 20 state_is flaky retrying || fail "flaky not retrying: $(field flaky state)"
wait_until 20 state_is quitter stopped || fail "quitter not stopped: $(field quitter state)"
wait_until 30 mv_is 'agentd_agent_runs_total{agent="slowpoke",outcome="timeout"}' 1 ||
	fail "the timeout is not counted: $(grep 'slowpoke",outcome' "$T/metrics.txt")"
wait_until 30 mv_is 'agentd_agent_restarts_total{agent="dropper"}' 1 ||
	fail "the restart is not counted: $(grep 'restarts_total{agent="dropper"' "$T/metrics.txt")"
wait_until 30 mv_is 'agentd_agent_runs_total{agent="modeler",outcome="completed"}' 1 ||
	fail "the model run did not complete: $(field modeler last_error)"
ctl restart sleeper > /dev/null || fail "restart sleeper"	# its run is cancelled
wait_until 30 mv_is 'agentd_agent_runs_total{agent="sleeper",outcome="cancelled"}' 1 ||
	fail "the cancel is not counted: $(grep 'sleeper",outcome' "$T/metrics.txt")"
wait_until 20 state_is sleeper idle || fail "sleeper not back"
scrape || fail "scrape: $(hbody)"

promtool check metrics < "$T/metrics.txt" > "$T/promtool.out" 2>&1 ||
	fail "promtool: $(head -20 "$T/promtool.out")"
[ -s "$T/promtool.out" ] && fail "promtool says: $(head -20 "$T/promtool.out")"
note "promtool check metrics: clean ($(wc -l < "$T/metrics.txt") lines)"

# One-hot: each agent has a row for every state, exactly one of them 1.
python3 - "$T/metrics.txt" <<'PY' || fail "agentd_agent_state is not one-hot"
import re, sys
states = "stopped starting idle running stopping backoff fatal waiting retrying".split()
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r'agentd_agent_state\{agent="([^"]+)",state="([^"]+)"\} (\S+)$', line)
    if m:
        rows.setdefault(m[1], {})[m[2]] = float(m[3])
assert len(rows) == 11, rows.keys()
for agent, r in rows.items():
    assert sorted(r) == sorted(states), (agent, r)
    assert sum(r.values()) == 1, (agent, r)
PY
for want in ok:idle sleeper:idle flaky:retrying quitter:stopped crasher:fatal backer:backoff; do
	[ "$(mv "agentd_agent_state{agent=\"${want%:*}\",state=\"${want#*:}\"}")" = 1 ] ||
		fail "$want is not 1: $(grep "state{agent=\"${want%:*}\"" "$T/metrics.txt" | grep ' 1$')"
done

check() { # SAMPLE VALUE
	[ "$(mv "$1")" = "$2" ] || fail "$1 is '$(mv "$1")', not $2"
}
check 'agentd_agent_runs_total{agent="ok",outcome="completed"}' 1
check 'agentd_agent_runs_total{agent="ok",outcome="failed"}' 0
check 'agentd_agent_runs_total{agent="broken",outcome="failed"}' 1
check 'agentd_agent_runs_total{agent="broken",outcome="completed"}' 0
check 'agentd_agent_runs_total{agent="sleeper",outcome="skipped"}' 1
check 'agentd_agent_runs_total{agent="dropper",outcome="failed"}' 1
check 'agentd_agent_retries_total{agent="flaky"}' 1
check 'agentd_agent_retries_total{agent="broken"}' 0
check 'agentd_agent_restarts_total{agent="ok"}' 0
check 'agentd_agent_paused{agent="idler"}' 1
check 'agentd_agent_paused{agent="ok"}' 0
# Two model requests (a tool call, then the answer), 11 in and 7 out each.
check 'agentd_agent_model_tokens_total{agent="modeler",kind="input"}' 22
check 'agentd_agent_model_tokens_total{agent="modeler",kind="output"}' 14
check 'agentd_agent_tool_calls_total{agent="modeler",outcome="ok"}' 1
check 'agentd_agent_tool_calls_total{agent="broken",outcome="error"}' 1
check 'agentd_agent_tool_calls_total{agent="ok",outcome="ok"}' 1
check 'agentd_agent_model_tokens_total{agent="ok",kind="input"}' 0
check 'agentd_build_info{version="0.1.0"}' 1
check 'agentd_store_degraded' 0
# Timestamps: the last run of ok, as status says it, in seconds; none for
# an agent that never ran.
last=$(ctl --json status ok | jget "d['last_run']")
python3 -c "import datetime,sys; t=datetime.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00')).timestamp(); sys.exit(abs(t - float(sys.argv[2])) > 1)" \
	"$last" "$(mv 'agentd_agent_last_run_timestamp_seconds{agent="ok"}')" ||
	fail "last run $(mv 'agentd_agent_last_run_timestamp_seconds{agent="ok"}') is not $last"
[ -z "$(mv 'agentd_agent_last_run_timestamp_seconds{agent="idler"}')" ] || fail "idler never ran, has a last run"
grep -q '^agentd_loop_lag_seconds_count [1-9]' "$T/metrics.txt" || fail "no loop lag observed"

# The run duration histogram of ok: one run, cumulative, +Inf = count.
python3 - "$T/metrics.txt" <<'PY' || fail "the run duration histogram is wrong"
import re, sys
b = [(m[1], float(m[2])) for m in re.finditer(r'agentd_agent_run_duration_seconds_bucket\{agent="ok",le="([^"]+)"\} (\S+)', open(sys.argv[1]).read())]
text = open(sys.argv[1]).read()
count = float(re.search(r'agentd_agent_run_duration_seconds_count\{agent="ok"\} (\S+)', text)[1])
total = float(re.search(r'agentd_agent_run_duration_seconds_sum\{agent="ok"\} (\S+)', text)[1])
assert b[-1][0] == "+Inf" and b[-1][1] == count == 1, b
assert all(x[1] <= y[1] for x, y in zip(b, b[1:])), b
assert 0 < total < 60, total
le = [float(x[0]) for x in b[:-1]]
assert le == sorted(le), le
first = next(float(x[0]) for x in b if x[1] == 1)
assert total <= first, (total, first)
PY

# TCP: /metrics needs the token, /readyz does not.
tcp() { curl -s -o "$T/tcp.body" -w '%{http_code}' --max-time 30 "$@"; }
[ "$(tcp "http://127.0.0.1:$TPORT/metrics")" = 401 ] || fail "/metrics on TCP without the token"
[ "$(tcp -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$TPORT/metrics")" = 200 ] &&
	grep -q '^agentd_build_info' "$T/tcp.body" || fail "/metrics on TCP with the token"
[ "$(tcp "http://127.0.0.1:$TPORT/readyz")" = 503 ] || fail "/readyz on TCP without the token: $(cat "$T/tcp.body")"

# The doomed agents go: ready.
{ header; agents; } | write_config
listen
ctl reload > /dev/null || fail "reload"
wait_until 30 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --unix-socket $HTTP_SOCK http://agentd/readyz)\" = 200 ]" ||
	fail "not ready without the doomed agents: $(hcode /readyz; hbody)"
hcode /readyz > /dev/null
hbody | jget "d['ready'] == True and d['not_ready'] == []" | grep -qx true || fail "readyz 200 says $(hbody)"
scrape
[ -z "$(mv 'agentd_agent_state{agent="crasher",state="fatal"}')" ] || fail "a removed agent is still shown"
note "readyz 200 once the fatal agent is gone"

# A store that takes no writes: another writer holds the db.
rm -f "$T/release"
python3 - "$T/state/agentd.db" "$T/locked" "$T/release" <<'PY' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
c.execute("ROLLBACK")
PY
LOCKER=$!
at_exit "touch $T/release; kill $LOCKER"
wait_until 20 test -f "$T/locked" || fail "the db could not be locked"
ctl run ok > /dev/null || fail "run ok"	# writes, which fail
degraded() { [ "$(hcode /readyz)" = 503 ] && hbody | jget "d['store']" | grep -qx degraded; }
wait_until 60 degraded || fail "readyz does not say the store is degraded: $(hbody)"
wait_until 20 mv_is agentd_store_degraded 1 || fail "agentd_store_degraded is not 1"
[ "$(mv agentd_store_errors_total)" -ge 1 ] || fail "no store error counted"
note "store degraded: $(hbody)"
touch "$T/release"
wait "$LOCKER"
ready() { [ "$(hcode /readyz)" = 200 ]; }
wait_until 90 ready || fail "not ready once the db takes writes: $(hbody)"
wait_until 20 mv_is agentd_store_degraded 0 || fail "agentd_store_degraded is not 0"
note "readyz 200 once the store commits again"
