# The dashboard (GET /) with curl, over the default unix listener and a TCP
# one: every agent's row (its owner: the file, or the API for one created
# there); what a worker, an MCP server and a model wrote --
# a last error, a stderr line, a model's answer in an event -- escaped for
# HTML text and attributes, and cut; the events shown per agent bounded.
# The unix listener needs no token; on TCP the login (a wrong token refused,
# /?token= redirected to a URL without it, the cookie HttpOnly and
# SameSite=Strict, good for the page only, a forged one refused, 64 logins
# at most), and the actions: refused without the session's CSRF token
# (none, another session's, agentd's own, under another name) or without
# the session, done with it.
. ./lib.sh

TPORT=$(free_port)
TOKEN=tok-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$T/token"
ECHO=$(cd ../mcp && pwd)/echoserver.py
LONG=$(printf 'x%.0s' $(seq 300))
cat > "$T/script.json" <<'JSON'
{"answer": [{"body": {"openai_text": "<img src=x onerror=alert(3)> & 'single'"}}]}
JSON
start_fakemodel
{ header; cat <<YAML
  failing:
    task_config: {tool: test_fail, message: "<script>alert(1)</script>$LONG"}
    env: {AGENTD_TEST_HOOKS: "1"}
  talker:
    model_config: {provider: openai, model: fake-model, base_url: "http://127.0.0.1:$PORT/answer/v1"}
    task_config: {query: "Say something"}
    local_tools: []
  noisy:
    task_config: {tool: new_files, directories: ["$T"]}
    mcp_tools:
      - {name: loud, command: sh, args: ["-c", "echo '<svg onload=alert(4)>' >&2; exec python3 $ECHO"]}
YAML
} | write_config
sed -i "s|^agentd:|agentd:\n  http:\n    listen: [\"unix:$T/state/http.sock\", \"127.0.0.1:$TPORT\"]\n    token_file: $T/token|" "$T/agents.yaml"
export OPENAI_API_KEY=sk-test-dashboard
start_agentd
wait_until 30 all_idle || fail "the workers did not come up"
ctl run failing >/dev/null && ctl run talker >/dev/null || fail "the runs did not start"
wait_until 30 sh -c "[ \"\$($B/agentctl -s $SOCK --json status failing | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"last_outcome\"])')\" = failed ]" ||
	fail "failing did not fail: $(ctl --json status failing)"
wait_until 30 state_is talker idle
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status talker | grep -q '\"last_outcome\": *\"completed\"'" ||
	fail "talker did not complete: $(ctl --json status talker | tail -c 600)"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status noisy | grep -qF 'svg onload'" ||
	fail "the MCP server's stderr line is not in noisy's last_stderr: $(ctl --json status noisy | tail -c 600)"
[ "$(field talker last_duration_ms | grep -cE '^[0-9]+$')" = 1 ] || fail "no last_duration_ms: $(field talker last_duration_ms)"
note "status: last_outcome failed / completed, last_duration_ms, the worker's last_stderr"

[ "$(hcode -X POST -H 'Content-Type: application/json' \
	-d '{"agent_id": "made", "task_config": {"tool": "system_info"}}' /v1/agents)" = 201 ] ||
	fail "an API agent was not created: $(hbody)"
wait_until 30 state_is made idle || fail "the API agent's worker did not come up"

# ---- the page, over the unix listener --------------------------------------
[ "$(hcode -D "$T/h.unix" /)" = 200 ] || fail "GET / over the unix listener: $(hbody | head -c 300)"
hbody > "$T/unix.html"
grep -qi '^content-type: text/html; charset=utf-8' "$T/h.unix" || fail "not text/html: $(cat "$T/h.unix")"
row() { python3 - "$1" "$2" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
m = re.search(r'<tr class="agent" id="agent-%s".*?</tr>' % re.escape(sys.argv[2]), html, re.S)
print(m.group(0) if m else "")
PY
}
for a in failing talker noisy; do
	r=$(row "$T/unix.html" $a)
	[ -n "$r" ] || fail "no row for $a"
	grep -q 'data-state="idle"' <<<"$r" || fail "$a is not shown idle: $r"
	grep -q '<td class="owner">file</td>' <<<"$r" || fail "$a's owner is not file: $r"
done
row "$T/unix.html" made | grep -q '<td class="owner">api</td>' || fail "the API agent's owner is not api: $(row "$T/unix.html" made)"
# Hostile text as text: escaped, in text and in attribute context alike.
for s in '&lt;script&gt;alert(1)&lt;/script&gt;' '&lt;img src=x onerror=alert(3)&gt;' \
	'&lt;svg onload=alert(4)&gt;' '&amp;' '&#39;single&#39;'; do
	grep -qF -- "$s" "$T/unix.html" || fail "$s is not on the page"
done
for s in '<script>alert' '<img' '<svg' "'single'"; do
	grep -qF -- "$s" "$T/unix.html" && fail "$s reached the page unescaped"
done
[ "$(grep -o '<script' "$T/unix.html" | wc -l)" = 1 ] || fail "the page holds a script not its own"
nonce=$(sed -n "s/^content-security-policy:.*script-src 'nonce-\([0-9a-f]*\)'.*/\1/ip" "$T/h.unix" | tr -d '\r')
[ -n "$nonce" ] && grep -qF "<script nonce=\"$nonce\">" "$T/unix.html" ||
	fail "the page's script does not carry its CSP nonce: $(grep -i '^content-security' "$T/h.unix")"
note "every agent's row, owned by the file or the API; the hostile error, answer and stderr line are text; one script, under the CSP nonce"
# Bounded: DASH_EVENTS events an agent, DASH_TEXT_MAX bytes a text.
[ "$(row "$T/unix.html" failing | grep -o '<li>' | wc -l)" = 3 ] || fail "not 3 events for failing"
[ "$(events_json failing | jget 'len(d)')" -gt 3 ] || fail "failing has too few events to show the bound"
err=$(row "$T/unix.html" failing | grep -o '<td class="err">[^<]*</td>')
grep -qF '…' <<<"$err" && ! grep -q 'x\{240\}' <<<"$err" || fail "a long error is not cut: $err"
note "3 events an agent, long texts cut"

csrf_of() { grep -o 'name="csrf" value="[0-9a-f]*"' "$1" | head -n 1 | sed 's/.*value="//; s/"//'; }
UCSRF=$(csrf_of "$T/unix.html")
[ ${#UCSRF} = 64 ] || fail "no CSRF token in the page's forms"
[ "$(hcode -X POST /ui/agents/noisy/pause)" = 403 ] || fail "a pause without the CSRF token: $(hbody | head -c 300)"
[ "$(hcode -X POST -d csrf=0123 /ui/agents/noisy/pause)" = 403 ] || fail "a pause with a wrong CSRF token"
[ "$(field noisy paused)" = false ] || fail "a refused pause paused"
[ "$(hcode -X POST -d "csrf=$UCSRF" /ui/agents/noisy/pause)" = 303 ] || fail "the page's pause: $(hbody | head -c 300)"
[ "$(field noisy paused)" = true ] || fail "the page's pause did not pause"
[ "$(hcode -X POST -d "csrf=$UCSRF" /ui/agents/noisy/resume)" = 303 ] && [ "$(field noisy paused)" = false ] ||
	fail "the page's resume did not resume"
note "unix listener: no token; an action needs the forms' CSRF token"

# ---- TCP: the login ----------------------------------------------------------
U=http://127.0.0.1:$TPORT
tcurl() { curl -s --max-time 30 "$@"; }
code() { tcurl -o "$T/t.body" -D "$T/t.head" -w '%{http_code}' "$@"; }
[ "$(code "$U/")" = 401 ] && grep -q 'action="/login"' "$T/t.body" || fail "GET / without a token is not the login form"
[ "$(code -d token=not-the-token "$U/login")" = 401 ] || fail "a wrong token logged in"
grep -qi '^set-cookie' "$T/t.head" && fail "a wrong token got a cookie"
[ "$(code "$U/?token=not-the-token")" = 401 ] || fail "a wrong ?token= logged in"
[ "$(code "$U/?token=$TOKEN")" = 303 ] || fail "?token= did not log in: $(cat "$T/t.head")"
loc=$(sed -n 's/^location: *//ip' "$T/t.head" | tr -d '\r')
[ "$loc" = / ] || fail "?token= redirects to \"$loc\", not /"
ck=$(sed -n 's/^set-cookie: *//ip' "$T/t.head" | tr -d '\r')
for attr in HttpOnly SameSite=Strict Path=/; do
	grep -qF "; $attr" <<<"$ck" || fail "the cookie lacks $attr: $ck"
done
C1=${ck%%;*}
note "login: wrong tokens refused; /?token= answers 303 to / with an HttpOnly SameSite=Strict cookie"
[ "$(code -b "$C1" "$U/")" = 200 ] || fail "the cookie does not open the page"
cp "$T/t.body" "$T/tcp.html"
grep -qF '&lt;script&gt;alert(1)' "$T/tcp.html" || fail "the TCP page lacks the agents"
[ "$(code -b "$C1" "$U/v1/status")" = 401 ] || fail "the page's cookie opened the JSON API"
[ "$(code -b "agentd_session=$(printf '%064d' 7)" "$U/")" = 401 ] || fail "a forged session cookie opened the page"
C2=$(tcurl -D - -o /dev/null -d "token=$TOKEN" "$U/login" | sed -n 's/^set-cookie: *\([^;]*\);.*/\1/ip')
[ -n "$C2" ] && [ "$C2" != "$C1" ] || fail "the login form gave no new session"
code -b "$C2" "$U/" >/dev/null && cp "$T/t.body" "$T/tcp2.html"
S1=$(csrf_of "$T/tcp.html") S2=$(csrf_of "$T/tcp2.html")
[ ${#S1} = 64 ] && [ "$S1" != "$S2" ] && [ "$S1" != "$UCSRF" ] || fail "the sessions do not have CSRF tokens of their own"
note "the cookie opens the page, not the API; a forged one nothing; each session its own CSRF token"

# ---- TCP: the actions ----------------------------------------------------------
flip=${S1: -1}; [ "$flip" = 0 ] && flip=1 || flip=0
for bad in "" "csrf=$S2" "csrf=$UCSRF" "csrf=${S1%?}$flip" "xcsrf=$S1" "csrfx=$S1" "csrf=$S1$S1"; do
	[ "$(code -b "$C1" -d "$bad" "$U/ui/agents/noisy/pause")" = 403 ] || fail "pause with \"$bad\" was not refused"
done
[ "$(code -d "csrf=$S1" "$U/ui/agents/noisy/pause")" = 401 ] || fail "pause without the session was not refused"
[ "$(field noisy paused)" = false ] || fail "a refused pause paused"
note "an action without the session's CSRF token (none, another session's, agentd's, a wrong one, under another name) is 403; without the session 401"
[ "$(code -b "$C1" -d "csrf=$S1" "$U/ui/agents/noisy/pause")" = 303 ] || fail "pause: $(head -c 300 "$T/t.body")"
[ "$(field noisy paused)" = true ] || fail "the pause did not pause"
[ "$(code -b "$C1" -d "csrf=$S1" "$U/ui/agents/noisy/resume")" = 303 ] && [ "$(field noisy paused)" = false ] ||
	fail "resume did not resume"
runs=$(field talker run_count)
[ "$(code -b "$C1" -d "csrf=$S1" "$U/ui/agents/talker/run")" = 303 ] || fail "run now: $(head -c 300 "$T/t.body")"
wait_until 30 sh -c "[ \$($B/agentctl -s $SOCK --json status talker | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"run_count\"])') -gt $runs ]" ||
	fail "run now did not run"
pid=$(field failing pid)
[ "$(code -b "$C2" -d "csrf=$S2" "$U/ui/agents/failing/restart")" = 303 ] || fail "restart: $(head -c 300 "$T/t.body")"
wait_until 30 sh -c "p=\$($B/agentctl -s $SOCK --json status failing | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"pid\"])'); [ \"\$p\" != None ] && [ \"\$p\" != $pid ]" ||
	fail "restart did not restart the worker"
[ "$(code -b "$C1" -d "csrf=$S1" "$U/ui/agents/%3Cscript%3E/pause")" = 404 ] || fail "an unknown agent's action"
grep -qF 'unknown agent &quot;&lt;script&gt;&quot;' "$T/t.body" || fail "the refusal does not escape the name: $(cat "$T/t.body")"
note "pause, resume, run now and restart through the forms; an unknown agent's name escaped in the refusal"
# At most 64 logins: the 65th ends the oldest (C1), the others stay.
for i in $(seq 63); do
	last=$(tcurl -D - -o /dev/null "$U/?token=$TOKEN" | sed -n 's/^set-cookie: *\([^;]*\);.*/\1/ip')
done
[ "$(code -b "$C1" "$U/")" = 401 ] || fail "the oldest login outlived 64 newer ones"
[ "$(code -b "$C2" "$U/")" = 200 ] && [ "$(code -b "$last" "$U/")" = 200 ] || fail "a login that is not the oldest was ended"
note "64 logins at most: a new one ends the oldest only"
stop_agentd || fail "agentd exit code $?"
grep -rqF "${TOKEN#tok-}" "$T/agentd.log" "$T/state" && fail "the token is in agentd's log or state"
exit 0
