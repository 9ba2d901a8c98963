# The HTTP API: every endpoint over the default unix listener and over TCP
# on 127.0.0.1, the same answers as agentctl's; every error with its status
# and {"error": {"code", "message"}} (bad JSON, bad args with where they
# are, an unknown agent or route, a wrong method, a run refused); TCP wants
# the bearer token (not /healthz), which never reaches the log; bodies and
# headers past their bounds, connections past the cap, a client that stops
# halfway, none of which holds agentd up.
. ./lib.sh

command -v curl > /dev/null || fail "curl missing (scripts/bootstrap installs it)"
HC="python3 ../httpclient.py"
TPORT=$(free_port)
TOKEN=tok-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$T/token"
{ header; cat <<YAML
  ticker:
    task_config: {tool: new_files, directories: ["$T"]}
    interval: 1h
  hand:
    task_config: {tool: system_info}
  slow:
    task_config: {tool: test_emit, count: 100, rate: 10}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  http:\n    listen: [\"unix:$HTTP_SOCK\", \"127.0.0.1:$TPORT\"]\n    token_file: $T/token|" "$T/agents.yaml"
tcp() { curl -s -o "$T/tcp.body" -w '%{http_code}' --max-time 30 "$@"; }
auth="Authorization: Bearer $TOKEN"
start_agentd
wait_until 10 all_idle || fail "workers not idle"
[ "$(stat -c %a "$HTTP_SOCK")" = 600 ] || fail "http.sock mode $(stat -c %a "$HTTP_SOCK")"

# The endpoints, and that they say what agentctl says.
[ "$(hcode /healthz)" = 200 ] && [ "$(hbody)" = ok ] || fail "healthz: $(hbody)"
[ "$(hcode /v1/status)" = 200 ] || fail "status: $(hbody)"
hbody | jget "(d['total_agents'] == 3 and d['running_agents'] == 3 and d['paused_agents'] == 0 and
    sorted(a['name'] for a in d['agents']) == ['hand', 'slow', 'ticker'] and 'store' in d)" | grep -qx true ||
	fail "status fields: $(hbody)"
[ "$(hcode /v1/agents)" = 200 ] || fail "agents: $(hbody)"
[ "$(hbody | jget 'sorted(a["name"] for a in d)')" = "$(ctl --json list | jget 'sorted(a["name"] for a in d)')" ] ||
	fail "agents differ from agentctl list: $(hbody)"
[ "$(hcode /v1/agents/ticker)" = 200 ] || fail "agent: $(hbody)"
hbody | jget "(all(k in d for k in ('agent_id', 'is_running', 'run_count', 'error_count', 'last_run',
    'available_tools', 'event_store', 'memory_store', 'session_id')))" | grep -qx true ||
	fail "seed status fields: $(hbody)"
[ "$(hcode /v1/tasks)" = 200 ] && [ "$(hbody | jget 'd')" = "{}" ] || fail "tasks: $(hbody)"
[ "$(hcode -X POST /v1/agents/ticker/pause)" = 200 ] || fail "pause: $(hbody)"
[ "$(hbody | jget "d['message']")" = "ticker paused" ] || fail "pause said $(hbody)"
[ "$(field ticker paused)" = true ] || fail "not paused after POST pause"
[ "$(hcode /v1/status)" = 200 ] && [ "$(hbody | jget "d['paused_agents']")" = 1 ] || fail "paused_agents"
[ "$(hcode -X POST /v1/agents/ticker/resume)" = 200 ] || fail "resume: $(hbody)"
[ "$(field ticker paused)" = false ] || fail "still paused after POST resume"
runs=$(field hand run_count)
[ "$(hcode -X POST -H 'Content-Type: application/json' -d '{"note": "from http", "n": 1.5}' \
	/v1/agents/hand/run)" = 200 ] || fail "run: $(hbody)"
ran() { [ "$(field hand run_count)" -gt "$runs" ]; }
wait_until 20 ran || fail "the run did not happen"
ctl --json events -n 50 hand | jget "[e['payload']['kwargs'] for e in d if e['type'] == 'background_task_started'][-1]" |
	jget "d['note'] == 'from http' and d['n'] == 1.5" | grep -qx true || fail "kwargs did not reach the run"
[ "$(hcode -X POST /v1/agents/ticker/restart)" = 200 ] || fail "restart: $(hbody)"
wait_until 20 all_idle || fail "not idle after the restart"
[ "$(hcode -X POST /v1/reload)" = 200 ] && [ "$(hbody | jget "d['unchanged']")" = 3 ] || fail "reload: $(hbody)"
[ "$(hcode '/v1/agents/hand/memory?type=episodic&limit=5')" = 200 ] || fail "memory: $(hbody)"
hbody | jget "isinstance(d, list)" | grep -qx true || fail "memory: $(hbody)"

# Events: pages that join up, filters.
[ "$(hcode '/v1/events?after=0&limit=3')" = 200 ] || fail "events: $(hbody)"
hbody | jget "len(d['events']) == 3 and d['more'] and d['cursor'] == d['events'][-1]['id']" | grep -qx true ||
	fail "a first page: $(hbody)"
all=$(ctl --json events -n 10000 | jget "[e['id'] for e in d]")
after=0 got="[]"
while :; do
	[ "$(hcode "/v1/events?after=$after&limit=4")" = 200 ] || fail "page after $after: $(hbody)"
	got=$(hbody | jget "$got + [e['id'] for e in d['events']]")
	after=$(hbody | jget "d['cursor']")
	[ "$(hbody | jget "d['more']")" = true ] || break
done
[ "$got" = "$all" ] || fail "the pages ($got) are not the log ($all)"
sid=$(field hand session_id)
[ "$(hcode "/v1/events?agent=hand&type=background_task_completed&session_id=$sid&limit=100")" = 200 ] ||
	fail "filtered: $(hbody)"
hbody | jget "(len(d['events']) >= 1 and all(e['agent_name'] == 'hand' and e['type'] == 'background_task_completed'
    and e['payload']['session_id'] == '$sid' for e in d['events']))" | grep -qx true || fail "filters: $(hbody)"
[ "$(hcode "/v1/events?session_id=nobody&limit=100")" = 200 ] && [ "$(hbody | jget "len(d['events'])")" = 0 ] ||
	fail "an unknown session: $(hbody)"

# Errors: status, code, message, and where.
err() {	# err STATUS CODE [CURL ARGS...] PATH: that status, {"error": {code, message}}
	local want=$1 code=$2; shift 2
	local got; got=$(hcode "$@")
	[ "$got" = "$want" ] || fail "$*: status $got, not $want: $(hbody)"
	hbody | jget "d['error']['code'] == '$code' and len(d['error']['message']) > 0" | grep -qx true ||
		fail "$*: body $(hbody)"
}
err 404 unknown_agent /v1/agents/nope
err 404 unknown_agent -X POST /v1/agents/nope/pause
err 404 not_found /v1/nothing
err 404 not_found /v1/agents/ticker/pause/more
err 405 method_not_allowed -X DELETE /v1/status
curl -s -i -X GET --unix-socket "$HTTP_SOCK" http://agentd/v1/agents/ticker/pause | grep -qi '^allow: POST' ||
	fail "405 without Allow"
err 400 bad_request -X POST -d '{"note": ' /v1/agents/hand/run
hbody | jget "'not JSON' in d['error']['message']" | grep -qx true || fail "bad JSON said $(hbody)"
err 400 bad_request -X POST -d '[1, 2]' /v1/agents/hand/run
[ "$(hbody | jget "d['error']['pointer']")" = "" ] || fail "no pointer to the body: $(hbody)"
python3 -c 'import json; v = 1
for _ in range(40): v = {"k": v}
print(json.dumps(v))' > "$T/deep.json"
err 400 bad_request -X POST --data-binary @"$T/deep.json" /v1/agents/hand/run
hbody | jget "'levels deep' in d['error']['message'] and d['error']['pointer'] == ''" | grep -qx true ||
	fail "deep kwargs: $(hbody)"
err 400 bad_request '/v1/events?limit=ten'
[ "$(hbody | jget "d['error']['parameter']")" = limit ] || fail "no parameter named: $(hbody)"
err 400 bad_request '/v1/events?limit=0'
[ "$(hbody | jget "d['error']['parameter']")" = limit ] || fail "limit 0: $(hbody)"
err 400 bad_request '/v1/events?colour=red'
err 400 bad_request '/v1/events?limit=1&limit=2'
err 400 bad_request '/v1/agents/hand/memory?type=dreams'
[ "$(hbody | jget "d['error']['parameter']")" = type ] || fail "bad memory type: $(hbody)"
err 400 bad_request '/v1/status?x=1'
# A run the agent cannot take now (the last still going, overlap skip):
# 409, with the reason.
[ "$(hcode -X POST /v1/agents/slow/run)" = 200 ] || fail "run slow: $(hbody)"
err 409 conflict -X POST /v1/agents/slow/run
hbody | jget "'skipped' in d['error']['message']" | grep -qx true || fail "409 body: $(hbody)"

# Bodies and headers past their bounds: refused, and agentd serves on.
head -c $((2 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' > "$T/big.json"
err 413 too_large -X POST --data-binary @"$T/big.json" /v1/agents/hand/run
err 413 too_large -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.json" /v1/agents/hand/run
big=$(head -c 100000 /dev/zero | tr '\0' a)
code=$(hcode -H "X-Big: $big" /v1/status)
case $code in 4*) ;; *) fail "a 100 KB header: status $code" ;; esac
[ "$(hcode /v1/status)" = 200 ] || fail "not serving after the oversize requests"

# TCP: the token for everything but /healthz, and never in the log.
[ "$(tcp "http://127.0.0.1:$TPORT/healthz")" = 200 ] || fail "healthz over TCP without a token"
[ "$(tcp "http://127.0.0.1:$TPORT/v1/status")" = 401 ] || fail "no token: $(cat "$T/tcp.body")"
jget "d['error']['code']" < "$T/tcp.body" | grep -qx unauthorized || fail "401 body: $(cat "$T/tcp.body")"
[ "$(tcp -H "Authorization: Bearer ${TOKEN}x" "http://127.0.0.1:$TPORT/v1/status")" = 401 ] || fail "a longer token passed"
[ "$(tcp -H "Authorization: Bearer ${TOKEN%?}" "http://127.0.0.1:$TPORT/v1/status")" = 401 ] || fail "a shorter token passed"
[ "$(tcp -H "Authorization: Bearer ${TOKEN%?}X" "http://127.0.0.1:$TPORT/v1/status")" = 401 ] || fail "a near token passed"
[ "$(tcp -H "Authorization: Basic $TOKEN" "http://127.0.0.1:$TPORT/v1/status")" = 401 ] || fail "Basic passed"
[ "$(tcp "http://127.0.0.1:$TPORT/v1/nothing")" = 401 ] || fail "an unknown route answered without a token"
[ "$(tcp -H "$auth" "http://127.0.0.1:$TPORT/v1/status")" = 200 ] || fail "the token is refused: $(cat "$T/tcp.body")"
[ "$(tcp -H "$auth" -X POST "http://127.0.0.1:$TPORT/v1/agents/ticker/pause")" = 200 ] || fail "pause over TCP"
[ "$(tcp -H "$auth" -X POST "http://127.0.0.1:$TPORT/v1/agents/ticker/resume")" = 200 ] || fail "resume over TCP"
[ "$(tcp -H "$auth" "http://127.0.0.1:$TPORT/v1/agents/nope")" = 404 ] || fail "404 over TCP"

# Too many connections: the cap (64 a listener) holds, the next is
# closed at once, and once they go agentd serves again.
coproc HOLD { $HC "127.0.0.1:$TPORT" hold 64; }
read -r -t 20 line <&"${HOLD[0]}" || fail "the holder printed nothing"
[ "$line" = "held 64" ] || fail "holder: $line"
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' -H "$auth" "http://127.0.0.1:$TPORT/v1/status")
[ "$code" = 000 ] || fail "a 65th connection was served: $code"
grep -q "64 connections already; closing one more" "$T/agentd.log" || fail "the 65th was not closed by agentd"
[ "$(hcode /v1/status)" = 200 ] || fail "the unix listener is held up by the TCP one's cap"
ctl status > /dev/null || fail "the control socket is held up"
exec {HOLD[1]}>&-
wait "$HOLD_PID" 2>/dev/null
wait_until 30 sh -c "curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H '$auth' http://127.0.0.1:$TPORT/v1/status | grep -qx 200" ||
	fail "not serving after the held connections went: $(tcp -v -H "$auth" "http://127.0.0.1:$TPORT/v1/status" 2>&1 | tail -5)"

# A client that sends half its headers and stops: the rest are served
# meanwhile, and it is closed after the idle timeout (10 s).
$HC "unix:$HTTP_SOCK" partial > "$T/partial.out" 2>&1 &
PART=$!
at_exit 'kill $PART'
wait_until 10 grep -q sent "$T/partial.out" || fail "the partial client did not send"
[ "$(hcode /v1/status)" = 200 ] || fail "a half request holds the loop"
wait_until 40 grep -q closed "$T/partial.out" || fail "a half request is kept open"

# Another uid on the unix socket, even one its file mode lets in: 403,
# and agentd says who it was.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
	chmod 711 "$T" "$T/state"
	chmod 666 "$HTTP_SOCK"
	code=$(setpriv --reuid=65534 --regid=65534 --clear-groups curl -s -o /dev/null -w '%{http_code}' \
		--unix-socket "$HTTP_SOCK" http://agentd/v1/status)
	[ "$code" = 403 ] || fail "another uid got $code"
	code=$(setpriv --reuid=65534 --regid=65534 --clear-groups curl -s -o /dev/null -w '%{http_code}' \
		-X POST --unix-socket "$HTTP_SOCK" http://agentd/v1/agents/ticker/pause)
	[ "$code" = 403 ] || fail "another uid paused: $code"
	[ "$(field ticker paused)" = false ] || fail "another uid paused ticker"
	wait_until 10 grep -q "http socket: refused uid 65534" "$T/agentd.log" || fail "the refusal is not logged"
	chmod 700 "$T/state"
else
	note "not root or no setpriv: the peer check is not tried"
fi

# The token is nowhere agentd writes, though requests carried it, right
# and wrong, at debug level.
grep -rqF "${TOKEN%?}" "$T/agentd.log" "$T/state" && fail "the token is in agentd's log or state"
kill -0 "$AGENTD_PID" || fail "agentd is gone"
stop_agentd || fail "agentd exit code $?"
[ -e "$HTTP_SOCK" ] && fail "http.sock left behind"
exit 0
