# The agent run with a model, end to end: agentctl run -> agentd -> worker
# -> a loopback server speaking the OpenAI / Anthropic wire formats -> tool
# calls -> the completed event and the agent's memory.  Then the error
# classes: 429 with Retry-After (or retry-after-ms, which wins), 408 and
# 409 retried, 529 (as a status and as a body after 200), 401,
# insufficient_quota, malformed and non-JSON bodies, a server that never
# answers, a 50 MB body, and max_steps.
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{
 "oa_tool": [{"body": {"openai_calls": [["system_info", {}]]}}, {"body": {"openai_text": "All fine."}}],
 "an_tool": [{"body": {"anthropic_calls": [["system_info", {"path": "/"}]]}}, {"body": {"anthropic_text": "All fine."}}],
 "oa_429": [{"status": 429, "headers": {"retry-after": "1"}, "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}},
            {"body": {"openai_text": "ok after waiting"}}],
 "oa_ms": [{"status": 429, "headers": {"retry-after-ms": "1500", "retry-after": "1"}, "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}},
           {"body": {"openai_text": "ok after 1500 ms"}}],
 "oa_408": [{"status": 408, "body": {"error": {"message": "Request timed out", "type": "timeout"}}}, {"body": {"openai_text": "ok after 408"}}],
 "oa_409": [{"status": 409, "body": {"error": {"message": "Conflict", "type": "conflict"}}}, {"body": {"openai_text": "ok after 409"}}],
 "an_529": [{"status": 529, "body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}, {"body": {"anthropic_text": "ok"}}],
 "an_529b": [{"body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}, {"body": {"anthropic_text": "ok"}}],
 "oa_401": [{"status": 401, "body": {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}}],
 "oa_quota": [{"status": 429, "body": {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}}],
 "oa_bad": [{"raw": "{\"choices\": [{\"mess"}],
 "oa_html": [{"content_type": "text/html", "raw": "<html>proxy error</html>"}],
 "oa_hang": [{"hang": true}],
 "oa_huge": [{"size": 50000000}],
 "oa_loop": [{"body": {"openai_calls": [["system_info", {}]]}}],
 "oa_par": [{"body": {"openai_calls": [["system_info", {}], ["new_files", {"directories": ["/nonexistent-dir"]}]]}}, {"body": {"openai_text": "both done"}}],
 "oa_len": [{"body": {"openai_text": "partial answ", "finish": "length"}}],
 "oa_watch": [{"body": {"openai_text": "noted"}}],
 "oa_leak": [{"body": {"openai_calls": [["new_files", {"directories": ["/tmp/sk-test-SECRET123"]}]]}}, {"body": {"openai_text": "done"}}],
 "oa_500": [{"status": 500, "body": {"error": {"message": "The server had an error", "type": "server_error"}}}]
}
JSON
start_fakemodel

agent() { # name provider scenario [extra yaml]
	local url="http://127.0.0.1:$PORT/$3"; [ "$2" = openai ] && url="$url/v1"
	cat <<YAML
  $1:
    system_instruction: "You watch this machine."
    model_config: {provider: $2, model: fake-model, base_url: "$url", request_timeout: $( [ "$1" = oa_hang ] && echo 1s || echo 10s )}
    task_config: {query: "Check system health", thresholds: {disk_usage: 99}}
    local_tools: [system_info]
    max_retries: ${4:-0}
    retry_delay: 100ms
YAML
}
{ header; agent oa_tool openai oa_tool; agent an_tool anthropic an_tool
  agent oa_429 openai oa_429 1; agent oa_ms openai oa_ms 1; agent oa_408 openai oa_408 1
  agent oa_409 openai oa_409 1; agent an_529 anthropic an_529 1; agent an_529b anthropic an_529b 1
  agent oa_401 openai oa_401 3; agent oa_quota openai oa_quota 3; agent oa_bad openai oa_bad 3
  agent oa_html openai oa_html 3; agent oa_hang openai oa_hang; agent oa_huge openai oa_huge
  agent oa_len openai oa_len; agent oa_500 openai oa_500 2
  agent oa_par openai oa_par | sed 's/local_tools: \[system_info\]/local_tools: [system_info, new_files]/'
  agent oa_leak openai oa_leak | sed 's/local_tools: \[system_info\]/local_tools: [new_files]/'
  agent oa_watch openai oa_watch | sed 's/local_tools: \[system_info\]/local_tools: [system_info, new_files]/'; cat <<YAML
    run_model: on_change
    watch: [{tool: new_files, args: {directories: ["$T/watched"]}}]
YAML
  agent oa_loop openai oa_loop; echo "    agent_config: {max_steps: 3}"; } | write_config
mkdir -p "$T/watched"
export OPENAI_API_KEY=sk-test-SECRET123 ANTHROPIC_API_KEY=ak-test-SECRET456
start_agentd
wait_until 5 all_idle || fail "workers not idle"

done_run() { # agent: the run finished (completed, or failed for good)
	events_json "$1" | jget "any(e['type']=='background_task_completed' or (e['type']=='background_task_error' and not e['payload']['will_retry']) for e in d)" | grep -qx true
}
ALL="oa_tool an_tool oa_429 oa_ms oa_408 oa_409 an_529 an_529b oa_401 oa_quota oa_bad oa_html oa_hang oa_huge oa_loop oa_par oa_len oa_500 oa_leak"
for a in $ALL; do
	ctl run $a >/dev/null || fail "run $a"
done
for a in $ALL; do
	wait_until 15 done_run $a || fail "$a did not finish"
done
reqs() { python3 -c "import json,sys; print(json.dumps([json.loads(l) for l in open('$T/requests.log') if json.loads(l)['scenario']=='$1']))"; }
completed() { events_json "$1" | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][0]"; }
last_error() { events_json "$1" | jget "[e['payload'] for e in d if e['type']=='background_task_error'][-1]"; }

# OpenAI: one tool call, the assistant message echoed, one role:tool answer.
completed oa_tool | jget "d['answer']=='All fine.' and d['steps']==2 and d['tool_calls']==1" | grep -qx true || fail "oa_tool result: $(completed oa_tool)"
reqs oa_tool | jget "d[0]['headers']['authorization']=='Bearer sk-test-SECRET123' and d[0]['body']['tools'][0]['function']['name']=='system_info' and d[0]['body']['messages'][0]=={'role':'system','content':'You watch this machine.'}" | grep -qx true || fail "oa_tool first request"
reqs oa_tool | jget "d[1]['body']['messages'][2]['tool_calls'][0]['id']=='call_0_system_info' and d[1]['body']['messages'][3]['role']=='tool' and d[1]['body']['messages'][3]['tool_call_id']=='call_0_system_info' and 'cpu_usage' in d[1]['body']['messages'][3]['content']" | grep -qx true || fail "oa_tool second request"
# Anthropic: x-api-key, version, top-level system, max_tokens, tool_result blocks.
completed an_tool | jget "d['answer']=='All fine.'" | grep -qx true || fail "an_tool result"
reqs an_tool | jget "d[0]['headers']['x-api-key']=='ak-test-SECRET456' and d[0]['headers']['anthropic-version']=='2023-06-01' and d[0]['body']['system']=='You watch this machine.' and d[0]['body']['max_tokens']>0 and d[0]['body']['tools'][0]['input_schema']['type']=='object'" | grep -qx true || fail "an_tool first request"
reqs an_tool | jget "d[1]['body']['messages'][1]['content'][0]['type']=='tool_use' and d[1]['body']['messages'][2]['content'][0]=={**d[1]['body']['messages'][2]['content'][0], 'type':'tool_result','tool_use_id':'toolu_0_system_info','is_error':False}" | grep -qx true || fail "an_tool tool_result"
# Retryable: 429 honours Retry-After (1 s), 529 both ways; then success.
completed oa_429 | jget "d['answer']" | grep -qx "ok after waiting" || fail "oa_429 not retried to success"
reqs oa_429 | jget "d[1]['t'] - d[0]['t'] >= 0.95" | grep -qx true || fail "Retry-After not honoured"
completed oa_ms | jget "d['answer']" | grep -qx "ok after 1500 ms" || fail "oa_ms not retried to success"
reqs oa_ms | jget "d[1]['t'] - d[0]['t'] >= 1.45" | grep -qx true || fail "retry-after-ms not honoured (nor preferred to retry-after)"
# 408 and 409: retryable, once each, then success.
for a in oa_408 oa_409; do
	completed $a | jget "d['answer']" | grep -qx "ok after ${a#oa_}" || fail "$a not retried to success: $(last_error $a)"
	last_error $a | jget "d['retryable']==True and d['attempt']==1" | grep -qx true || fail "$a: $(last_error $a)"
	[ "$(reqs $a | jget 'len(d)')" = 2 ] || fail "$a: not exactly one retry"
done
for a in an_529 an_529b; do completed $a | jget "d['answer']" | grep -qx ok || fail "$a not retried"; done
# Fatal: one request, no retry, the error names the cause.
for a in oa_401:"HTTP 401" oa_quota:"quota" oa_bad:"not JSON" oa_html:"text/html"; do
	n=${a%%:*}; want=${a#*:}
	last_error $n | jget "d['retryable']==False and d['attempt']==1" | grep -qx true || fail "$n retried: $(last_error $n)"
	last_error $n | jget "d['error']" | grep -q "$want" || fail "$n error: $(last_error $n)"
	[ "$(reqs $n | jget 'len(d)')" = 1 ] || fail "$n sent more than one request"
done
last_error oa_hang | jget "d['retryable']==True and 'timed out' in d['error']" | grep -qx true || fail "hang: $(last_error oa_hang)"
last_error oa_huge | jget "'exceeds 8 MiB' in d['error']" | grep -qx true || fail "huge: $(last_error oa_huge)"
last_error oa_loop | jget "'max_steps (3)' in d['error']" | grep -qx true || fail "loop: $(last_error oa_loop)"
[ "$(field oa_huge state)" = idle ] || fail "a 50 MB body hurt the worker"
# Parallel calls: one role:tool answer per tool_call_id, a failing tool told as an error.
reqs oa_par | jget "[m.get('tool_call_id') for m in d[1]['body']['messages'] if m['role']=='tool']" |
	grep -qx '\["call_0_system_info", "call_1_new_files"\]' || fail "parallel tool results"
completed oa_par | jget "d['tool_calls']" | grep -qx 2 || fail "parallel tool call count"
completed oa_len | jget "d['truncated']==True and d['finish']=='length'" | grep -qx true || fail "finish_reason length"
# 500 every time: retried until max_retries (2) is spent, then failed.
[ "$(reqs oa_500 | jget 'len(d)')" = 3 ] || fail "500 not retried exactly max_retries times"
last_error oa_500 | jget "d['retryable']==True and d['will_retry']==False and d['attempt']==3" | grep -qx true || fail "500 final error"
# model_request events, and no secret anywhere agentd writes.
[ "$(count_events oa_tool model_request)" = 2 ] || fail "model_request events"
# A model that echoes the key into tool arguments: redacted before it leaves the worker.
events_json oa_leak | jget "[e['payload']['arguments'] for e in d if e['type']=='tool_call_started'][0]" |
	grep -q redacted || fail "echoed key not redacted"
events_json > "$T/all.json"
grep -q "SECRET" "$T/all.json" "$T/agentd.log" && fail "an API key leaked into events or the log"
# Memory: the run is remembered and given to the next run as context.
ctl --json memory oa_tool | jget "[m['content'] for m in d]" | grep -q "All fine." || fail "episodic memory"
ctl --json memory oa_tool --type procedural | jget "d[0]['content']" | grep -qx system_info || fail "procedural memory"
ctl run oa_tool >/dev/null
wait_until 10 sh -c "[ \$(python3 -c \"import json; print(len([l for l in open('$T/requests.log') if json.loads(l)['scenario']=='oa_tool']))\") -ge 3 ]" || fail "second run"
reqs oa_tool | jget "'Context from earlier runs' in d[2]['body']['messages'][1]['content'] and 'All fine.' in d[2]['body']['messages'][1]['content']" | grep -qx true || fail "memory not given as context"

# Change-gated: the model runs on the first run, not when nothing changed,
# and again (told what changed) once a new file appears.
nreq() { reqs oa_watch | jget 'len(d)'; }
watch_run() { # expected total runs
	ctl run oa_watch >/dev/null
	wait_until 10 sh -c "[ \$(AGENTD_SOCKET=$SOCK $B/agentctl --json events -n 1000 oa_watch | python3 -c 'import json,sys; print(len([e for e in json.load(sys.stdin) if e[\"type\"]==\"background_task_completed\"]))') -ge $1 ]" || fail "watch run $1"
}
watch_run 1; [ "$(nreq)" = 1 ] || fail "first on_change run did not call the model"
watch_run 2; [ "$(nreq)" = 1 ] || fail "unchanged watch still called the model"
events_json oa_watch | jget "[e['payload']['result'] for e in d if e['type']=='background_task_completed'][-1]['model_skipped']" | grep -qx true || fail "skip not reported"
touch "$T/watched/fresh.log"
watch_run 3; [ "$(nreq)" = 2 ] || fail "a change did not call the model"
reqs oa_watch | jget "'fresh.log' in d[1]['body']['messages'][1]['content']" | grep -qx true || fail "the change was not given to the model"
exit 0
