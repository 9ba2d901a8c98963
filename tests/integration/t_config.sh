# Configuration errors: each kind reported as file:line:column, agentd does
# not start, --check-config exits 1; a good file checks clean.
. ./lib.sh

check() { # expected-substring, then the YAML on stdin
	cat > "$T/bad.yaml"
	out=$("$B/agentd" --check-config -c "$T/bad.yaml" 2>&1); rc=$?
	[ $rc = 1 ] || fail "exit $rc for: $1"
	echo "$out" | grep -qF -- "$1" || fail "expected '$1', got: $out"
}
check "bad.yaml:3:5: unknown key \"intervall\" in background_agents.a" <<'Y'
background_agents:
  a:
    intervall: 5
Y
check "bad.yaml:3:18: background_agents.a.max_retries must be an integer" <<'Y'
background_agents:
  a:
    max_retries: three
Y
check "bad.yaml:3:18: background_agents.a.retry_delay: bad duration \"5 minutes\"" <<'Y'
background_agents:
  a:
    retry_delay: 5 minutes
Y
check "bad.yaml:3:15: background_agents.a.interval: bad cron expression \"61 * * * *\": minute field" <<'Y'
background_agents:
  a:
    interval: "61 * * * *"
Y
check "bad.yaml:5:15: duplicate agent_id \"same\" (also used by agent \"a\" at" <<'Y'
background_agents:
  a: {agent_id: same}
  b:
    task_config: {}
    agent_id: same
Y
check "bad.yaml:3:11: background_agents.a.task: no task \"nope\" in the tasks registry" <<'Y'
background_agents:
  a:
    task: nope
Y
check "bad.yaml:3:15: environment variable AGENTD_NO_SUCH_VAR is not set" <<'Y'
background_agents:
  a:
    agent_id: ${AGENTD_NO_SUCH_VAR}
Y
check "bad.yaml:4:1: did not find expected ',' or ']' while parsing a flow sequence (started at 3:15)" <<'Y'
background_agents:
  a:
    interval: [unclosed
Y
check "bad.yaml:1:1: unknown top-level key \"agents\"" <<'Y'
agents: {}
background_agents: {}
Y
check "bad.yaml:3:14: background_agents.a.overlap must be one of skip, queue, cancel_previous" <<'Y'
background_agents:
  a:
    overlap: sometimes
Y
# Several mistakes: all reported in one go.
cat > "$T/bad.yaml" <<'Y'
background_agents:
  a:
    max_retries: x
    retry_delay: y
Y
n=$("$B/agentd" --check-config -c "$T/bad.yaml" 2>&1 | grep -c "bad.yaml:")
[ "$n" = 2 ] || fail "expected 2 errors, got $n"

# agentd itself refuses to start on a bad file.
"$B/agentd" -c "$T/bad.yaml" >/dev/null 2>&1; [ $? = 1 ] || fail "agentd started on a bad file"
# The example and a file with defaults and interpolation are fine.
"$B/agentd" --check-config -c ../../conf/agents.example.yaml >/dev/null || fail "example config"
AGENTD_TEST_DIR=$T "$B/agentd" --check-config -c /dev/stdin >/dev/null <<'Y' || fail "interpolation"
agentd: {state_dir: "${AGENTD_TEST_DIR}/s", log_level: "${AGENTD_NO_SUCH:-debug}"}
background_agents: {}
Y
exit 0
