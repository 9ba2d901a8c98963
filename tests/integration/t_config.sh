# Configuration errors: each kind reported as file:line:column, agentd does
# not start, --check-config exits 1; a good file checks clean.  What is not
# a configuration file says so; what used to pass and fail at run time is
# refused at its position; an alias bomb is refused both by --check-config
# and by a SIGHUP reload of a running agentd, under a memory limit.
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
cat > "$T/interp.yaml" <<'Y'
agentd: {state_dir: "${AGENTD_TEST_DIR}/s", log_level: "${AGENTD_NO_SUCH:-debug}"}
background_agents: {}
Y
AGENTD_TEST_DIR=$T "$B/agentd" --check-config -c "$T/interp.yaml" >/dev/null || fail "interpolation"

# Not a configuration file: said before anything is parsed.
not_config() { # path expected
	out=$("$B/agentd" --check-config -c "$1" 2>&1); rc=$?
	[ $rc = 1 ] || fail "exit $rc for $1"
	echo "$out" | grep -qF -- "$2" || fail "expected '$2', got: $out"
}
not_config "$T" "$T: is a directory, not a configuration file"
not_config /dev/zero "/dev/zero: is a character device, not a configuration file"
mkfifo "$T/fifo"
not_config "$T/fifo" "$T/fifo: is a FIFO, not a configuration file"
truncate -s 17M "$T/huge.yaml"
not_config "$T/huge.yaml" "$T/huge.yaml: is larger than 16 MiB"
printf 'background_agents:\n  a:\n    x\0y: 1\n' > "$T/nul.yaml"
not_config "$T/nul.yaml" "$T/nul.yaml:3:6: contains a NUL byte"

# What passed --check-config and then failed at run time, or silently
# became a default: refused at its position (every row of every table is
# in the unit tests; these are the ones the issue names).
check "bad.yaml:3:30: background_agents.a.model_config.provider: unknown provider \"openaix\" (known: openai, anthropic, ollama" <<'Y'
background_agents:
  a:
    model_config: {provider: openaix, model: m}
Y
check "bad.yaml:3:45: background_agents.a.model_config.model must be text, not 3" <<'Y'
background_agents:
  a:
    model_config: {provider: openai, model: 3}
Y
check "bad.yaml:6:24: background_agents.a.model_config.request_timeout: bad duration \"5parsecs\"" <<'Y'
background_agents:
  a:
    model_config:
      provider: openai
      model: m
      request_timeout: 5parsecs
Y
for t in 0 -1; do
check "background_agents.a.model_config.request_timeout" <<Y
background_agents:
  a:
    model_config: {provider: openai, model: m, request_timeout: $t}
Y
done
check "bad.yaml:3:48: unknown key \"colour\" in background_agents.a.model_config" <<'Y'
background_agents:
  a:
    model_config: {provider: openai, model: m, colour: blue}
Y
check "bad.yaml:3:20: unknown key \"max_stepz\" in background_agents.a.agent_config (did you mean max_steps?)" <<'Y'
background_agents:
  a:
    agent_config: {max_stepz: 4}
Y
check "bad.yaml:3:31: background_agents.a.agent_config.max_steps must be an integer, not \"ten\"" <<'Y'
background_agents:
  a:
    agent_config: {max_steps: ten}
Y
check "bad.yaml:6:15: background_agents.a.mcp_tools[0].args must be a list" <<'Y'
background_agents:
  a:
    mcp_tools:
      - name: fs
        command: npx
        args: "notalist"
Y
check "bad.yaml:1:24: agentd.memory_store must be one of memory, database, redis, qdrant, chromadb, not \"qdrnt\"" <<'Y'
agentd: {memory_store: qdrnt}
background_agents: {}
Y
# chromadb: a Chroma server's URL is needed (from the file, whichever says
# chromadb), and Chroma's names are checked as Chroma checks them.
check "bad.yaml:1:44: agentd.memory_store chromadb needs agentd.chromadb.url" <<'Y'
agentd: {memory_store: chromadb, chromadb: {tenant: t_1}}
background_agents: {}
Y
printf 'agentd: {state_dir: %s}\nbackground_agents: {}\n' "$T/vs" > "$T/vs.yaml"
out=$(MEMORY_STORE_TYPE=chromadb "$B/agentd" --check-config -c "$T/vs.yaml" 2>&1) && fail "MEMORY_STORE_TYPE=chromadb without a url passed"
echo "$out" | grep -qF "environment variable MEMORY_STORE_TYPE chromadb needs agentd.chromadb.url" || fail "chromadb from the environment: $out"
check "bad.yaml:2:56: agentd.chromadb.collection: a Chroma name is 3-63 of A-Z a-z 0-9 . _ -, starting and ending with a letter or digit, not \"my memories\"" <<'Y'
agentd:
  chromadb: {url: "http://127.0.0.1:8000", collection: "my memories"}
background_agents: {}
Y
check "bad.yaml:1:26: agentd.chromadb.url must be an http:// or https:// URL without ?query, not \"localhost:8000\"" <<'Y'
agentd: {chromadb: {url: localhost:8000}}
background_agents: {}
Y
check "bad.yaml:7:43: background_agents.a.local_tools[0].inputSchema: keyword format is not enforced" <<'Y'
background_agents:
  a:
    local_tools:
      - name: mail
        command: [/bin/echo, "{to}"]
        inputSchema:
          properties: {to: {type: string, format: email}}
Y

# An agent's spec that its worker could not be sent (50 levels deep, 5 MB)
# is refused here, with the position, not found out at the worker's start.
python3 -c 'print("background_agents:\n  a:\n    task_config:\n      x: " + "[" * 50 + "]" * 50)' > "$T/deep.yaml"
out=$("$B/agentd" --check-config -c "$T/deep.yaml" 2>&1) && fail "a 50-deep task_config passed"
echo "$out" | grep -qF "deep.yaml:4:32: background_agents.a.task_config nests deeper than 24 levels" || fail "deep: $out"
python3 -c 'print("background_agents:\n  a:\n    task_config: {blob: \"" + "x" * (5 << 20) + "\"}")' > "$T/big.yaml"
out=$("$B/agentd" --check-config -c "$T/big.yaml" 2>&1) && fail "a 5 MB task_config passed"
echo "$out" | grep -qF "big.yaml:2:3: background_agents.a: the agent's spec is" || fail "big: $out"

# A key variable that is not set here: a warning (the service's
# environment may differ), not an error.
cat > "$T/key.yaml" <<'Y'
background_agents:
  a:
    model_config: {provider: openai, model: m, api_key_env: AGENTD_T_NO_KEY}
Y
out=$(env -u AGENTD_T_NO_KEY "$B/agentd" --check-config -c "$T/key.yaml" 2>&1) || fail "a missing key failed the check: $out"
echo "$out" | grep -qF "key.yaml:3:61: warning: background_agents.a.model_config: AGENTD_T_NO_KEY is not set in this environment" || fail "no warning for the missing key: $out"
echo "$out" | grep -q "ok, 1 agents" || fail "check output: $out"

# An alias bomb: nine lists of nine aliases of the one before (~1.6e9
# nodes expanded).  Refused, under a memory limit the expansion would
# blow through, by --check-config and by a reload of a running agentd,
# which keeps running its old configuration.
bomb() {
	printf 'x0: &x0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n'
	for i in 1 2 3 4 5 6 7 8 9; do
		p="*x$((i - 1))"
		printf 'x%d: &x%d [%s,%s,%s,%s,%s,%s,%s,%s,%s]\n' $i $i $p $p $p $p $p $p $p $p $p
	done
}
if ldd "$B/agentd" | grep -q libasan; then
	note "sanitizer build: the bomb runs without ulimit -v (ASan reserves terabytes of address space)"
else
	ulimit -v 262144
fi
{ bomb; echo "background_agents: {}"; } > "$T/bomb.yaml"
out=$("$B/agentd" --check-config -c "$T/bomb.yaml" 2>&1); rc=$?
[ $rc = 1 ] || fail "bomb: exit $rc: $out"
echo "$out" | grep -qF "bomb.yaml:6:18: alias *x4: the document expands past 262144 nodes (an alias bomb?)" || fail "bomb: $out"

{ header; cat <<YAML
  keep:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 200ms
YAML
} | write_config
start_agentd
wait_until 10 state_is keep idle || fail "keep not idle"
pid=$(field keep pid)
{ bomb; cat "$T/agents.yaml"; } > "$T/agents.new" && mv "$T/agents.new" "$T/agents.yaml"
kill -HUP "$AGENTD_PID"
wait_until 20 grep -q "reload refused" "$T/agentd.log" || fail "bomb reload not refused"
grep -q "agents.yaml:6:18: alias \*x4: the document expands past 262144 nodes" "$T/agentd.log" || fail "bomb reload: no position in the log"
kill -0 "$AGENTD_PID" || fail "agentd died on a bomb reload"
runs=$(field keep run_count)
wait_until 20 sh -c "[ \$($B/agentctl -s $SOCK --json status keep | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"run_count\"])') -gt $runs ]" || fail "keep stopped running after the bomb"
[ "$(field keep pid)" = "$pid" ] || fail "the bomb reload touched keep's worker"
exit 0
