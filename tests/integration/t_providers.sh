# Provider names: each service's request goes to its endpoint's path under
# base_url (pointed at the loopback stand-in) with its auth header and the
# key from its own variable; azure builds its deployment URL with
# api-version and sends api-key.  A key the config names but agentd's
# environment lacks: logged, shown in status, and the run fails at once
# with that reason -- no request reaches the provider.  Errors name the
# service (groq), not its wire format.
. ./lib.sh

cat > "$T/script.json" <<'JSON'
{
 "oa": [{"body": {"openai_text": "ok"}}], "an": [{"body": {"anthropic_text": "ok"}}],
 "ol": [{"body": {"openai_text": "ok"}}], "or": [{"body": {"openai_text": "ok"}}],
 "gq": [{"body": {"openai_text": "ok"}}], "ds": [{"body": {"openai_text": "ok"}}],
 "mi": [{"body": {"openai_text": "ok"}}], "to": [{"body": {"openai_text": "ok"}}],
 "ge": [{"body": {"openai_text": "ok"}}], "az": [{"body": {"openai_text": "ok"}}],
 "gqerr": [{"status": 401, "body": {"error": {"message": "Invalid API Key", "type": "invalid_request_error"}}}],
 "nokey": [{"body": {"openai_text": "must not be asked"}}]
}
JSON
start_fakemodel

# name provider base-path-under-the-scenario [more model_config]
agent() {
	cat <<YAML
  $1:
    model_config: {provider: $2, model: m-$1, base_url: "http://127.0.0.1:$PORT/$1$3"${4:-}}
    task_config: {query: "say ok"}
    local_tools: []
    max_retries: 0
YAML
}
# The base paths are the documented ones, so the path each request takes is
# the documented endpoint (conf/provider.c cites them).
{ header
  agent oa openai /v1; agent an anthropic ""; agent ol ollama /v1
  agent or openrouter /api/v1; agent gq groq /openai/v1; agent ds deepseek ""
  agent mi mistral /v1; agent to together /v1; agent ge gemini /v1beta/openai
  agent az azure "" ", deployment: dep1"
  agent gqerr groq /openai/v1
  agent nokey openai /v1 ", api_key_env: AGENTD_T_NO_SUCH_KEY"
} | write_config
export OPENAI_API_KEY=k-oa ANTHROPIC_API_KEY=k-an OPENROUTER_API_KEY=k-or GROQ_API_KEY=k-gq
export DEEPSEEK_API_KEY=k-ds MISTRAL_API_KEY=k-mi TOGETHER_API_KEY=k-to GEMINI_API_KEY=k-ge
export AZURE_OPENAI_API_KEY=k-az
unset OLLAMA_API_KEY AGENTD_T_NO_SUCH_KEY
start_agentd
wait_until 10 all_idle || fail "workers not idle"

ALL="oa an ol or gq ds mi to ge az"
for a in $ALL gqerr nokey; do ctl run $a >/dev/null || fail "run $a"; done
finished() { events_json "$1" | jget "any(e['type'] in ('background_task_completed', 'background_task_error') for e in d)" | grep -qx true; }
for a in $ALL gqerr nokey; do wait_until 20 finished $a || fail "$a did not finish"; done
req() { # scenario: its first request
	python3 -c "import json,sys; print(json.dumps([json.loads(l) for l in open('$T/requests.log') if json.loads(l)['scenario']=='$1'][0]))"
}
path_is() { [ "$(req "$1" | jget "d['path']")" = "$2" ] || fail "$1: path $(req "$1" | jget "d['path']"), want $2"; }
header_is() { [ "$(req "$1" | jget "d['headers'].get('$2')")" = "$3" ] || fail "$1: $2 is $(req "$1" | jget "d['headers'].get('$2')"), want $3"; }

for a in oa or gq ds mi to ge; do
	events_json $a | jget "[e['payload']['result']['answer'] for e in d if e['type']=='background_task_completed']" | grep -q ok || fail "$a: no answer"
	header_is $a authorization "Bearer k-$a"
	req $a | jget "d['body']['model']" | grep -qx "m-$a" || fail "$a: model"
done
path_is oa /oa/v1/chat/completions
path_is or /or/api/v1/chat/completions
path_is gq /gq/openai/v1/chat/completions
path_is ds /ds/chat/completions
path_is mi /mi/v1/chat/completions
path_is to /to/v1/chat/completions
path_is ge /ge/v1beta/openai/chat/completions
# anthropic: Messages, x-api-key and the version header
path_is an /an/v1/messages
header_is an x-api-key k-an
header_is an anthropic-version 2023-06-01
header_is an authorization null
# ollama: no key needed, none sent
path_is ol /ol/v1/chat/completions
header_is ol authorization null
# azure: the deployment URL with api-version, the key in api-key
path_is az "/az/openai/deployments/dep1/chat/completions?api-version=2024-10-21"
header_is az api-key k-az
header_is az authorization null
# model_request events name the service
events_json gq | jget "[e['payload']['provider'] for e in d if e['type']=='model_request'][0]" | grep -qx groq || fail "model_request does not name groq"
# and so do its errors (the wire format is OpenAI's; the service is groq)
events_json gqerr | jget "[e['payload']['error'] for e in d if e['type']=='background_task_error'][0]" |
	grep -q "^groq HTTP 401: Invalid API Key" || fail "error does not name groq: $(events_json gqerr | jget "[e['payload'] for e in d if e['type']=='background_task_error']")"

# The missing key: a log line, a status field, a run failed at once, for
# good, with the reason -- and nothing sent.
grep -q "agent nokey: model_config.api_key_env: AGENTD_T_NO_SUCH_KEY is not set in agentd's environment" "$T/agentd.log" || fail "no log line for the missing key"
field nokey api_key_error | grep -q "AGENTD_T_NO_SUCH_KEY is not set" || fail "status api_key_error: $(field nokey api_key_error)"
[ "$(field oa api_key_error)" = null ] || fail "api_key_error on an agent with its key"
err=$(events_json nokey | jget "[e['payload'] for e in d if e['type']=='background_task_error'][-1]")
echo "$err" | jget "d['retryable']==False and 'AGENTD_T_NO_SUCH_KEY is not set' in d['error']" | grep -qx true || fail "nokey run: $err"
grep -q '"scenario": "nokey"' "$T/requests.log" && fail "a run without its key reached the provider"
grep -q "k-" "$T/agentd.log" && fail "a key reached agentd's log"
exit 0
