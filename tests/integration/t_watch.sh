# Change-gated runs (run_model: on_change) against watch tools that make
# gating hard: a command whose output is the same but whose run time is
# not (only the output is compared), a 5 MB output (hashed whole, shown to
# the model cut to tool_output_max, an unchanged run's result small), and
# new_files whose change met a failed model call (its watermark moves only
# with a successful run, so the next run is shown the change).
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{"w_same": [{"body": {"openai_text": "noted"}}],
 "w_big": [{"body": {"openai_text": "noted"}}],
 "w_mark": [{"body": {"openai_text": "baseline"}},
            {"status": 400, "body": {"error": {"message": "bad request", "type": "invalid_request_error"}}},
            {"body": {"openai_text": "seen"}}]}
JSON
start_fakemodel
mkdir -p "$T/watched"
gated() { # name watch-yaml tools-yaml
	cat <<YAML
  $1:
    model_config: {provider: openai, model: m, base_url: "http://127.0.0.1:$PORT/$1/v1"}
    task_config: {query: "What changed?"}
    agent_config: {tool_output_max: 2000}
    max_retries: 0
    run_model: on_change
    watch: [$2]
    local_tools: $3
YAML
}
{ header
  gated w_same "{tool: same}" '[{name: same, command: [sh, -c, "sleep 0.$(date +%N | cut -c1); echo same"]}]'
  gated w_big "{tool: big}" '[{name: big, command: [sh, -c, "head -c 5000000 /dev/zero | tr \"\\\\0\" a"], output_max: 6000000}]'
  gated w_mark "{tool: new_files, args: {directories: [\"$T/watched\"]}}" '[new_files]'
} | write_config
export OPENAI_API_KEY=sk-test-watch
start_agentd
wait_until 10 all_idle || fail "workers not idle"

finished() { events_json "$1" | jget "len([e for e in d if e['type'] in ('background_task_completed','background_task_error')])"; }
finished_is() { [ "$(finished "$1")" -ge "$2" ]; }
run_n() { # agent n: run it and wait for its n-th end
	ctl run "$1" >/dev/null || fail "run $1"
	wait_until 60 finished_is "$1" "$2" || fail "$1: run $2 did not finish"
}
reqs() { python3 -c "import json,sys; print(json.dumps([json.loads(l) for l in open('$T/requests.log') if json.loads(l)['scenario']=='$1']))"; }
nreq() { reqs "$1" | jget 'len(d)'; }
results() { events_json "$1" | jget "[e['payload'].get('result') or e['payload'].get('error') for e in d if e['type'] in ('background_task_completed','background_task_error')]"; }

# The same output, another run time each time: the model is called once.
for i in 1 2 3 4 5; do run_n w_same $i; done
[ "$(nreq w_same)" = 1 ] || fail "an unchanged command output called the model $(nreq w_same) times in 5 runs"
note "a command's unchanged output gates the model whatever its run time"

# 5 MB: the model gets tool_output_max of it; an unchanged run completes small.
run_n w_big 1
run_n w_big 2
[ "$(nreq w_big)" = 1 ] || fail "an unchanged 5 MB output called the model again"
size=$(reqs w_big | jget "len(d[0]['body']['messages'][-1]['content'])")
[ "$size" -lt 10000 ] || fail "the model was sent $size characters of a watch capped at 2000"
reqs w_big | jget "d[0]['body']['messages'][-1]['content']" | grep -q 'truncated [0-9]* bytes' || fail "the cut is not marked"
events_json w_big | jget "[e['payload']['result'].get('model_skipped') for e in d if e['type']=='background_task_completed'][-1]" |
	grep -qx true || fail "the unchanged run did not complete as skipped: $(results w_big)"
note "a 5 MB watch output: $size characters to the model, an unchanged run skipped"

# new_files: a change whose model call failed is shown again by the next run.
run_n w_mark 1
touch "$T/watched/fresh.log"
run_n w_mark 2
events_json w_mark | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][-1]" |
	grep -q "HTTP 400" || fail "the second run did not fail: $(results w_mark)"
run_n w_mark 3
[ "$(nreq w_mark)" = 3 ] || fail "the run after a failed one did not call the model: $(results w_mark)"
reqs w_mark | jget "'fresh.log' in d[2]['body']['messages'][-1]['content']" | grep -qx true ||
	fail "the change the failed run missed was not shown: $(reqs w_mark | jget "d[2]['body']['messages'][-1]['content']")"
run_n w_mark 4	# the watermark moved with run 3: fresh.log is not new any more
reqs w_mark | jget "not any('fresh.log' in r['body']['messages'][-1]['content'] for r in d[3:])" | grep -qx true ||
	fail "the change was shown again after a run that succeeded"
note "new_files' watermark moves only with a successful run"
stop_agentd || fail "agentd did not stop cleanly"
exit 0
