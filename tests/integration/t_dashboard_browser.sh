# The dashboard in a real browser: headless Chromium (Debian's), driven over
# the DevTools protocol (tests/browser/cdp.js), against agentd's TCP
# listener.  Without the token it gets the login form, and a wrong token
# typed in is refused; it logs in with /?token= once and is left on / with the
# session in an HttpOnly SameSite=Strict cookie its scripts cannot read;
# the DOM holds every agent with its state, and the hostile texts a worker,
# an MCP server's stderr and a model wrote as text -- no element made of
# them, no dialog opened; pressing pause pauses the agent (agentctl status
# says so), and the same button on a form stripped of its CSRF token is
# refused; a run started elsewhere reloads the page by itself, showing it.
# The screenshots stay in build/ (t_dashboard_browser*.png).
. ./lib.sh

[ -x /usr/bin/chromium ] || skip "no /usr/bin/chromium (scripts/bootstrap installs Debian's chromium)"
NODE=${AGENTD_NPM_CACHE:-$HOME/.cache/agentd/npm}/bin/node
[ -x "$NODE" ] || fail "no Node.js in the npm cache: run scripts/bootstrap"
"$NODE" -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' ||
	fail "$NODE ($("$NODE" --version)) has no WebSocket; cdp.js needs Node.js 22: run scripts/bootstrap"

TPORT=$(free_port)
TOKEN=tok-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$T/token"
ECHO=$(cd ../mcp && pwd)/echoserver.py
cat > "$T/script.json" <<'JSON'
{"answer": [{"body": {"openai_text": "<img src=x onerror=alert(3)>"}}]}
JSON
start_fakemodel
{ header; cat <<YAML
  failing:
    task_config: {tool: test_fail, message: "<script>alert(1)</script>"}
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
sed -i "s|^agentd:|agentd:\n  http:\n    listen: [\"127.0.0.1:$TPORT\"]\n    token_file: $T/token|" "$T/agents.yaml"
export OPENAI_API_KEY=sk-test-dashboard
start_agentd
wait_until 30 all_idle || fail "the workers did not come up"
ctl run failing >/dev/null && ctl run talker >/dev/null || fail "the runs did not start"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status failing | grep -q '\"last_outcome\": *\"failed\"'" || fail "failing did not fail"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status talker | grep -q '\"last_outcome\": *\"completed\"'" || fail "talker did not complete"
wait_until 30 sh -c "$B/agentctl -s $SOCK --json status noisy | grep -qF 'svg onload'" || fail "no stderr line for noisy"

U=http://127.0.0.1:$TPORT
mkdir -p "$T/browser"
"$NODE" ../browser/cdp.js "$T/browser" "goto:$U/" dom:login \
	"eval:document.querySelector('input[name=token]').value = 'not-the-token'" "click:form button" dom:wrong \
	"goto:$U/?token=$TOKEN" dom:first shot:dashboard cookies:cookies \
	"click:#agent-noisy form[action\$='/pause'] button" dom:paused \
	"eval:document.querySelector('#agent-talker form[action\$=\"/pause\"] input[name=csrf]').remove()" \
	"click:#agent-talker form[action\$='/pause'] button" dom:nocsrf "goto:$U/" \
	"sh:$B/agentctl -s $SOCK run talker" reload dom:live shot:live > "$T/cdp.out" 2>&1 ||
	fail "the browser: $(tail -5 "$T/cdp.out"; tail -5 "$T/browser/chromium.log")"
cp "$T/browser/dashboard.png" "$B/t_dashboard_browser.png"
cp "$T/browser/live.png" "$B/t_dashboard_browser_live.png"
note "screenshots: $B/t_dashboard_browser.png, $B/t_dashboard_browser_live.png"

dom() { jget "$2" < "$T/browser/$1.json"; }
rowof() { echo "[r for r in d['rows'] if r['agent'] == '$1'][0]"; }
[ "$(dom login "[d['forms'], len(d['rows'])]")" = '[1, 0]' ] || fail "without the token the page is not the login form alone"
dom wrong "d['message']" | grep -q "not agentd's token" || fail "a wrong token in the form: $(dom wrong "d['body']")"
[ "$(dom wrong "len(d['rows'])")" = 0 ] || fail "a wrong token showed the agents"
note "without the token: the login form; a wrong one typed in is refused"
[ "$(dom first "d['url']")" = "$U/" ] || fail "the login left the browser on $(dom first "d['url']")"
[ "$(dom first "sorted((r['agent'], r['state'], r['owner']) for r in d['rows'])")" = \
	'[["failing", "idle", "file"], ["noisy", "idle", "file"], ["talker", "idle", "file"]]' ] ||
	fail "the agents' rows: $(dom first "d['rows']")"
dom first "$(rowof failing)['error']" | grep -qF '<script>alert(1)</script>' || fail "the error is not shown as text"
dom first "$(rowof noisy)['stderr']" | grep -qF '<svg onload=alert(4)>' || fail "the stderr line is not shown as text"
dom first "$(rowof talker)['events']" | grep -qF '<img src=x onerror=alert(3)>' || fail "the answer is not shown as text"
for f in first paused live; do
	[ "$(dom $f "[d['scripts'], d['injected'], d['dialogs']]")" = '[1, 0, []]' ] ||
		fail "$f: scripts, elements made of hostile text, dialogs: $(dom $f "[d['scripts'], d['injected'], d['dialogs']]")"
done
note "the DOM: three agents idle, owned by the file; the hostile texts as text, no element of theirs, no dialog"
[ "$(jget "[(c['name'], c['httpOnly'], c['sameSite']) for c in d]" < "$T/browser/cookies.json")" = \
	'[["agentd_session", true, "Strict"]]' ] || fail "the cookie: $(cat "$T/browser/cookies.json")"
[ "$(dom first "d['cookie_visible']")" = "" ] || fail "the page's script can read the session cookie"
note "/?token= once, then / with an HttpOnly SameSite=Strict cookie scripts cannot read"
[ "$(dom paused "$(rowof noisy)['paused']")" = true ] || fail "the page after pause does not show noisy paused"
[ "$(field noisy paused)" = true ] || fail "pressing pause did not pause noisy: $(ctl status)"
[ "$(dom paused "$(rowof noisy)['actions']")" = '["resume", "run now", "restart"]' ] || fail "no resume offered"
note "pause pressed: agentctl status says noisy is paused"
[ "$(dom nocsrf "[d['title'], len(d['rows'])]")" = '["refused", 0]' ] && dom nocsrf "d['message']" | grep -q 'CSRF' ||
	fail "pause without the form's CSRF token was not refused: $(dom nocsrf "d['body']")"
[ "$(field talker paused)" = false ] || fail "pause without the CSRF token paused talker"
note "the same form without its CSRF token: refused, talker not paused"
[ "$(dom live "$(rowof talker)['counters']" | cut -d' ' -f1)" = 2 ] ||
	fail "the page did not reload itself after a run: $(dom live "$(rowof talker)['counters']"), loads $(dom live "d['loads']")"
note "a run started with agentctl: the page reloaded by itself and shows it"
exit 0
