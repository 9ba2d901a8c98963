# Model replies in the shapes providers (and compatible servers) send that
# are easy to misread, each end to end through agentd and the loopback
# stand-in: OpenAI content as a list of parts, arguments as an object or
# not an object, a NUL in the answer, a refusal, finish_reason
# content_filter (a failed run, not an answer); Anthropic pause_turn,
# refusal, a tool_use without a name, an input that is not an object.
# total_tokens_limit against usage that is missing, negative or far too
# small.  Tool output over tool_output_max cut on a character ('€' x
# 20000, emoji), and a NUL in a command's output ending nothing.
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{
 "oa_parts": [{"body": {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
   "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "part two"}]}}],
   "usage": {"prompt_tokens": 5, "completion_tokens": 4}}}],
 "oa_args": [{"body": {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
   "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "new_files", "arguments": {"directories": ["/nonexistent-objargs"]}}},
                  {"id": "c2", "type": "function", "function": {"name": "new_files", "arguments": 5}}]}}],
   "usage": {"prompt_tokens": 5, "completion_tokens": 4}}},
   {"body": {"openai_text": "seen"}}],
 "oa_nul": [{"raw": "{\"choices\": [{\"index\": 0, \"finish_reason\": \"stop\", \"message\": {\"role\": \"assistant\", \"content\": \"a\\u0000b\"}}], \"usage\": {\"prompt_tokens\": 1, \"completion_tokens\": 1}}"}],
 "oa_refusal": [{"body": {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null,
   "refusal": "I will not do that."}}], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}}],
 "oa_filter": [{"body": {"choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant",
   "content": "The first half of"}}], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}}],
 "an_pause": [{"body": {"anthropic_text": "searching...", "stop": "pause_turn"}}, {"body": {"anthropic_text": "done after the pause"}}],
 "an_refusal": [{"body": {"anthropic_text": "", "stop": "refusal"}}],
 "an_noname": [{"body": {"id": "msg", "type": "message", "role": "assistant", "stop_reason": "tool_use",
   "content": [{"type": "tool_use", "id": "toolu_1", "input": {}}], "usage": {"input_tokens": 3, "output_tokens": 3}}}],
 "an_input": [{"body": {"id": "msg", "type": "message", "role": "assistant", "stop_reason": "tool_use",
   "content": [{"type": "tool_use", "id": "toolu_1", "name": "system_info", "input": "not an object"}],
   "usage": {"input_tokens": 3, "output_tokens": 3}}}, {"body": {"anthropic_text": "told"}}],
 "tok_none": [{"body": {"openai_calls": [["system_info", {}]], "usage": null}}],
 "tok_neg": [{"body": {"openai_calls": [["system_info", {}]], "usage": {"prompt_tokens": -100, "completion_tokens": -100, "total_tokens": -200}}}],
 "tok_tiny": [{"body": {"openai_calls": [["system_info", {}]], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}],
 "tok_nolimit": [{"body": {"openai_text": "no usage, no limit", "usage": null}}],
 "out_euro": [{"body": {"openai_calls": [["euro", {}]]}}, {"body": {"openai_text": "ok"}}],
 "out_emoji": [{"body": {"openai_calls": [["emoji", {}]]}}, {"body": {"openai_text": "ok"}}],
 "out_nul": [{"body": {"openai_calls": [["nul", {}]]}}, {"body": {"openai_text": "ok"}}]
}
JSON
start_fakemodel

agent() { # name provider [agent_config]
	local url="http://127.0.0.1:$PORT/$1"; [ "$2" = openai ] && url="$url/v1"
	cat <<YAML
  $1:
    model_config: {provider: $2, model: fake-model, base_url: "$url", request_timeout: 10s}
    task_config: {query: "Go"}
    agent_config: ${3:-{\}}
    max_retries: 0
    local_tools: [system_info, new_files]
YAML
}
py_tool() { # name python-expression printed
	echo "      - {name: $1, command: [python3, -c, \"import sys; sys.stdout.write($2)\"], output_max: 1000000}"
}
outputs() { # an agent printing big non-ASCII output and a NUL
	agent "$1" openai "{tool_output_max: 1000}" | sed 's/local_tools: \[system_info, new_files\]/local_tools:/'
	py_tool euro "'€' * 20000"; py_tool emoji "'😀' * 10000"; py_tool nul "'abc' + chr(0) + 'def'"
}
{ header
  for a in oa_parts oa_args oa_nul oa_refusal oa_filter tok_nolimit; do agent $a openai; done
  for a in an_pause an_refusal an_noname an_input; do agent $a anthropic; done
  for a in tok_none tok_neg tok_tiny; do agent $a openai "{total_tokens_limit: 1000, max_steps: 30}"; done
  for a in out_euro out_emoji out_nul; do outputs $a; done
} | write_config
export OPENAI_API_KEY=sk-test-replies ANTHROPIC_API_KEY=ak-test-replies
start_agentd
wait_until 10 all_idle || fail "workers not idle"

ALL="oa_parts oa_args oa_nul oa_refusal oa_filter tok_nolimit an_pause an_refusal an_noname an_input tok_none tok_neg tok_tiny out_euro out_emoji out_nul"
for a in $ALL; do ctl run $a >/dev/null || fail "run $a"; done
done_run() { events_json "$1" | jget "any(e['type'] in ('background_task_completed','background_task_error') for e in d)" | grep -qx true; }
for a in $ALL; do wait_until 30 done_run $a || fail "$a did not finish"; done
reqs() { python3 -c "import json,sys; print(json.dumps([json.loads(l) for l in open('$T/requests.log') if json.loads(l)['scenario']=='$1']))"; }
answer() { events_json "$1" | jget "[e['payload']['result']['answer'] for e in d if e['type']=='background_task_completed'][0]"; }
error() { events_json "$1" | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][0]"; }
is_error() { # agent text: the run failed, saying text
	events_json "$1" | jget "any(e['type']=='background_task_error' for e in d) and not any(e['type']=='background_task_completed' for e in d)" | grep -qx true ||
		fail "$1 did not fail: $(events_json "$1" | jget "[e['payload'] for e in d if e['type']=='background_task_completed']")"
	error "$1" | grep -qF -- "$2" || fail "$1: expected \"$2\" in: $(error "$1")"
}
tool_content() { # agent: the content of the tool results the model got back, as JSON
	reqs "$1" | jget "[m['content'] for m in d[1]['body']['messages'] if m['role']=='tool'] or [b['content'] for m in d[1]['body']['messages'] if m['role']=='user' and isinstance(m['content'], list) for b in m['content'] if b.get('type')=='tool_result']"
}

# OpenAI.
[ "$(answer oa_parts)" = "part one, part two" ] || fail "content parts: $(answer oa_parts)"
tool_content oa_args | jget "'/nonexistent-objargs' in d[0] and 'arguments are not a JSON object' in d[1]" | grep -qx true ||
	fail "object arguments not used, or a number not told as an error: $(tool_content oa_args)"
[ "$(answer oa_nul)" = "a�b" ] || fail "a NUL in the answer: $(answer oa_nul) / $(error oa_nul)"
is_error oa_refusal "the model refused: I will not do that."
is_error oa_filter "content filter withheld the answer (finish_reason content_filter); partial answer: The first half of"
[ "$(reqs oa_filter | jget 'len(d)')" = 1 ] || fail "a filtered answer was asked again"
note "OpenAI: content parts, object and bad arguments, a NUL, a refusal, a filtered answer"

# Anthropic.
[ "$(answer an_pause)" = "done after the pause" ] || fail "pause_turn: $(answer an_pause) / $(error an_pause)"
reqs an_pause | jget "d[1]['body']['messages'][-1]['role']=='assistant' and d[1]['body']['messages'][-1]['content'][0]['text']=='searching...' and all(m['content'] for m in d[1]['body']['messages'])" |
	grep -qx true || fail "pause_turn was not continued from its own message: $(reqs an_pause | jget "d[1]['body']['messages']")"
is_error an_refusal "the model refused (stop_reason refusal)"
is_error an_noname "tool_use without id or name"
tool_content an_input | jget "'arguments are not a JSON object' in d[0]" | grep -qx true || fail "a non-object input: $(tool_content an_input)"
note "Anthropic: pause_turn continued, a refusal, a tool_use without a name, a non-object input"

# total_tokens_limit: fail closed without usable usage; a floor under usage that is too small.
is_error tok_none "reported no token usage it could be held to, so total_tokens_limit (1000) cannot be kept"
is_error tok_neg "reported no token usage it could be held to"
is_error tok_tiny "total_tokens_limit (1000) exceeded"
for a in tok_none tok_neg; do [ "$(reqs $a | jget 'len(d)')" = 1 ] || fail "$a went on after a reply without usage"; done
n=$(reqs tok_tiny | jget 'len(d)')
[ "$n" -le 10 ] || fail "usage of 2 tokens a call let $n calls run under a limit of 1000"
[ "$(answer tok_nolimit)" = "no usage, no limit" ] || fail "missing usage failed a run without a limit"
note "tokens: missing and negative usage fail closed; 2-token usage stopped after $n calls"

# Tool output: cut on a character, marked, never "(not valid UTF-8)"; a NUL ends nothing.
for a in out_euro out_emoji; do
	c=$(tool_content $a | jget "d[0]")
	case "$c" in *"not valid UTF-8"*|*"�"*) fail "$a: not cut on a character: ${c:0:80}...${c: -80}";; esac
	grep -q '\.\.\.\[truncated [0-9]* bytes\]$' <<<"$c" || fail "$a: no marker: ${c:0:80}...${c: -80}"
	[ "$(printf %s "$c" | wc -c)" -le 1100 ] || fail "$a: more than tool_output_max went to the model"
done
tool_content out_euro | jget "d[0]" | grep -q '€€€' || fail "the euros are gone"
tool_content out_nul | jget "'abc\\\\u0000def' in d[0]" | grep -qx true || fail "a NUL ended a command's output: $(tool_content out_nul)"
note "tool output: '€' and emoji cut on a character with a marker; a NUL is kept"
stop_agentd || fail "agentd did not stop cleanly"
exit 0
