# Agents created at run time: POST /v1/agents with the seed's keys as JSON
# (checked by the file's schema, every error with its JSON pointer), PATCH
# as a merge patch (only what changed restarts: interval keeps the worker,
# model_config restarts it), DELETE; ETag and If-Match (412 on a stale
# one); ownership (409 on a file agent, both ways: a reload that would take
# an API agent's name is refused whole); the same commands over agentctl
# (create FILE.yaml, update -f, delete, export, whose output loads back as
# a file agent); API agents untouched by SIGHUP and back after SIGKILL of
# agentd with their counters; one whose config no longer loads is kept,
# not started, its error in status, until an update fixes it.
. ./lib.sh

command -v curl > /dev/null || fail "curl missing (scripts/bootstrap installs it)"
{ header; cat <<YAML
  filed:
    task_config: {tool: system_info}
  idd:
    agent_id: taken
    task_config: {tool: system_info}
YAML
} | write_config
AGENTD_WRAP="env AGENTD_T_WHO=tester" start_agentd
wait_until 20 all_idle || fail "workers not idle"
J='Content-Type: application/json'

# Create: 201, the status with owner api, the ETag in a header and the body.
[ "$(hcode -D "$T/h" -X POST -H "$J" -d '{"agent_id": "made", "system_instruction": "for ${AGENTD_T_WHO}",
    "task_config": {"tool": "system_info"}, "interval": "1h", "max_retries": 2}' /v1/agents)" = 201 ] ||
	fail "create: $(hbody)"
etag=$(hbody | jget "d['etag']")
grep -qi "^ETag: \"$etag\"" "$T/h" || fail "create's ETag header: $(cat "$T/h")"
[ "$(hbody | jget "[d['owner'], d['name'], d['schedule']]")" = '["api", "made", "1h"]' ] || fail "create said $(hbody)"
wait_until 20 all_idle || fail "the new agent's worker is not idle"
[ "$(ctl --json list | jget "{a['name']: a['owner'] for a in d}")" = '{"filed": "file", "idd": "file", "made": "api"}' ] ||
	fail "list owners: $(ctl --json list)"
ctl status | grep -q "^made .* api$" || fail "status table owner: $(ctl status)"
[ "$(hcode /v1/agents/made)" = 200 ] && [ "$(hbody | jget "d['etag']")" = "$etag" ] || fail "GET etag: $(hbody)"

# Every error: bad JSON, the schema's (several at once, each at its pointer), a
# conflict with the file's agent or an existing one, an unknown agent, a
# body past its bound.
[ "$(hcode -X POST -H "$J" -d '{"agent_id": "x",' /v1/agents)" = 400 ] || fail "bad JSON: $(hbody)"
hbody | grep -q "the body is not JSON" || fail "bad JSON said $(hbody)"
[ "$(hcode -X POST -H "$J" -d '[1]' /v1/agents)" = 400 ] || fail "not an object: $(hbody)"
[ "$(hcode -X POST -H "$J" -d '{"agent_id": "bad", "interval": "soon", "colour": 1,
    "model_config": {"provider": "nope", "model": "m"}, "max_retries": -1}' /v1/agents)" = 400 ] ||
	fail "schema errors: $(hbody)"
hbody | jget "sorted(e['pointer'] for e in d['error']['errors'])" |
	grep -qx '\["/colour", "/interval", "/max_retries", "/model_config/provider"\]' ||
	fail "schema error pointers: $(hbody)"
hbody | jget "d['error']['pointer'] == d['error']['errors'][0]['pointer'] and d['error']['code'] == 'bad_request'" |
	grep -qx true || fail "schema error's first pointer: $(hbody)"
hbody | jget "[e['message'] for e in d['error']['errors'] if e['pointer'] == '/interval'][0]" |
	grep -qx 'background_agents.bad.interval: bad duration "soon" (use seconds or e.g. 90s, 5m, 1h30m)' ||
	fail "the file's message for /interval: $(hbody)"
[ "$(hcode /v1/agents/bad)" = 404 ] || fail "a refused agent exists: $(hbody)"
[ "$(hcode -X POST -H "$J" -d '{"interval": 5}' /v1/agents)" = 400 ] && hbody | grep -q "agent_id is required" ||
	fail "no agent_id: $(hbody)"
[ "$(hcode -X POST -H "$J" -d '{"agent_id": "filed"}' /v1/agents)" = 409 ] && hbody | grep -q "the file's" ||
	fail "create over a file agent: $(hbody)"
[ "$(hcode -X POST -H "$J" -d '{"agent_id": "made"}' /v1/agents)" = 409 ] || fail "create twice: $(hbody)"
[ "$(hcode -X POST -H "$J" -d '{"agent_id": "taken"}' /v1/agents)" = 409 ] &&
	hbody | grep -q "agent_id taken is agent idd's already (the file's)" || fail "a file agent's agent_id: $(hbody)"
[ "$(hcode -X PATCH -H "$J" -d '{"interval": "2h"}' /v1/agents/filed)" = 409 ] &&
	hbody | grep -q "filed belongs to the file" || fail "patch of a file agent: $(hbody)"
[ "$(hcode -X DELETE /v1/agents/filed)" = 409 ] || fail "delete of a file agent: $(hbody)"
[ "$(field filed owner)" = file ] && [ "$(field filed schedule)" = manual ] || fail "the file agent was touched"
[ "$(hcode -X PATCH -H "$J" -d '{"interval": "2h"}' /v1/agents/ghost)" = 404 ] || fail "patch unknown: $(hbody)"
[ "$(hcode -X DELETE /v1/agents/ghost)" = 404 ] || fail "delete unknown: $(hbody)"
head -c $((2 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' > "$T/big"
[ "$(hcode -X POST -H "$J" --data-binary @"$T/big" /v1/agents)" = 413 ] || fail "oversize body: $(hbody)"
[ "$(hcode -X PATCH -H "$J" -d '{"agent_id": "renamed"}' /v1/agents/made)" = 400 ] &&
	hbody | grep -q '"pointer":"/agent_id"' || fail "agent_id changed: $(hbody)"
[ "$(hcode -X PATCH -H "$J" -d '{"interval": "never"}' /v1/agents/made)" = 400 ] &&
	hbody | grep -q '"pointer":"/interval"' || fail "bad patch: $(hbody)"
[ "$(field made schedule)" = 1h ] || fail "a refused patch changed the agent"

# PATCH: a stale If-Match is refused; interval alone keeps the worker,
# model_config restarts it; a null removes a key (merge patch).
pid=$(field made pid)
[ "$(hcode -X PATCH -H "$J" -H 'If-Match: "0123"' -d '{"interval": "2h"}' /v1/agents/made)" = 412 ] ||
	fail "stale If-Match: $(hbody)"
hbody | grep -q precondition_failed || fail "412 said $(hbody)"
[ "$(hcode -D "$T/h" -X PATCH -H "$J" -H "If-Match: \"$etag\"" -d '{"interval": "2h", "max_retries": null}' \
	/v1/agents/made)" = 200 ] || fail "patch interval: $(hbody)"
etag2=$(hbody | jget "d['etag']")
[ "$etag2" != "$etag" ] && grep -qi "^ETag: \"$etag2\"" "$T/h" || fail "the ETag did not change"
[ "$(field made schedule)" = 2h ] || fail "interval not applied"
[ "$(field made pid)" = "$pid" ] || fail "an interval change restarted the worker"
[ "$(hcode -X PATCH -H "$J" -H "If-Match: \"$etag\"" -d '{"interval": "3h"}' /v1/agents/made)" = 412 ] ||
	fail "the first ETag still applies: $(hbody)"
[ "$(hcode -X PATCH -H "$J" -d '{"model_config": {"provider": "ollama", "model": "llama3"}}' /v1/agents/made)" = 200 ] ||
	fail "patch model_config: $(hbody)"
restarted() { p=$(field made pid); [ "$p" != null ] && [ "$p" != "$pid" ] && state_is made idle; }
wait_until 20 restarted || fail "a model_config change did not restart the worker"
ctl export made > "$T/export.yaml" || fail "export"
grep -q "max_retries" "$T/export.yaml" && fail "the null did not remove max_retries: $(cat "$T/export.yaml")"
grep -q "llama3" "$T/export.yaml" || fail "export lacks the patch: $(cat "$T/export.yaml")"

# agentctl: create from YAML, update -f, errors with their pointers, export.
cat > "$T/new.yaml" <<'YAML'
agent_id: yamled
task_config: {tool: system_info, note: "from yaml"}
interval: 45m
YAML
ctl create "$T/new.yaml" | grep -q "^yamled: .*owner api, etag " || fail "agentctl create"
printf 'interval: 50m\n' > "$T/patch.yaml"
ctl update yamled -f "$T/patch.yaml" > /dev/null || fail "agentctl update"
[ "$(field yamled schedule)" = 50m ] || fail "agentctl update not applied"
printf 'interval: 50x\nrun_on_start: maybe\n' > "$T/badpatch.yaml"
ctl update yamled -f "$T/badpatch.yaml" 2> "$T/err"; rc=$?
[ "$rc" = 2 ] && grep -q "^agentctl: /interval: " "$T/err" && grep -q "^/run_on_start: " "$T/err" ||
	fail "agentctl update errors ($rc): $(cat "$T/err")"
ctl update filed -f "$T/patch.yaml" 2> "$T/err"; [ $? = 1 ] && grep -q "belongs to the file" "$T/err" ||
	fail "agentctl update of a file agent: $(cat "$T/err")"
ctl export filed 2> /dev/null && fail "export of a file agent"
printf 'env:\n  AGENTD_T_TOKEN: {value: "tok-%s", secret: true}\n' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$T/secret.yaml"
secret=$(sed -n 's/.*value: "\(tok-[0-9a-f]*\)".*/\1/p' "$T/secret.yaml")
ctl update yamled -f "$T/secret.yaml" > /dev/null || fail "agentctl update with a secret"
wait_until 20 state_is yamled idle || fail "yamled not back after its env changed"
ctl export yamled | grep -q "AGENTD_T_TOKEN" || fail "export lacks the env entry"
ctl export yamled | grep -q "$secret" && fail "export shows a secret env value"
[ "$(hcode /v1/agents/yamled/config)" = 200 ] && ! hbody | grep -q "$secret" || fail "GET config shows the secret: $(hbody)"
ctl export yamled > "$T/yamled.yaml" || fail "agentctl export"
{ header; sed 1d "$T/yamled.yaml"; } > "$T/moved.yaml"
"$B/agentd" --check-config -c "$T/moved.yaml" > "$T/check.out" 2>&1 || fail "export does not load as a file: $(cat "$T/check.out")"

# SIGHUP: API agents untouched; a file agent with an API agent's name is
# refused with the running config kept (the reload's other change too).
made_pid=$(field made pid)
{ header; cat <<YAML
  filed:
    task_config: {tool: system_info}
    interval: 7h
  made:
    task_config: {tool: system_info}
  alias:
    agent_id: yamled
    task_config: {tool: system_info}
YAML
} | write_config
kill -HUP "$AGENTD_PID"
wait_until 10 grep -q "agent made belongs to the API" "$T/agentd.log" || fail "the clashing reload was not refused"
grep -q "agent alias: agent_id yamled is agent yamled's, created over the API" "$T/agentd.log" ||
	fail "the reload's agent_id clash is not said"
[ "$(field made owner)" = api ] && [ "$(field made pid)" = "$made_pid" ] || fail "the clash touched made"
[ "$(field filed schedule)" = manual ] || fail "a refused reload changed filed"
ctl reload 2> "$T/err"; [ $? = 1 ] && grep -q "agent made belongs to the API" "$T/err" || fail "agentctl reload: $(cat "$T/err")"
{ header; cat <<YAML
  filed:
    task_config: {tool: system_info}
    interval: 7h
YAML
} | write_config
kill -HUP "$AGENTD_PID"
sched_is() { [ "$(field "$1" schedule)" = "$2" ]; }
wait_until 10 sched_is filed 7h || fail "the good reload did not apply"
[ "$(field made owner)" = api ] && [ "$(field made pid)" = "$made_pid" ] || fail "a reload touched an API agent"
[ "$(field yamled owner)" = api ] || fail "a reload removed an API agent"

# SIGKILL: the API agents come back, with their counters, ETags and
# schedules; one whose config no longer loads (AGENTD_T_WHO is gone) is
# kept, not started, its error in status, until an update fixes it.
runs=$(field yamled run_count)
ctl run yamled > /dev/null || fail "run yamled"
ran() { [ "$(field yamled run_count)" -gt "$runs" ] && state_is yamled idle; }
wait_until 20 ran || fail "yamled did not run"
runs=$(field yamled run_count)
yetag=$(hcode /v1/agents/yamled > /dev/null; hbody | jget "d['etag']")
kill_agentd
start_agentd
wait_until 20 state_is yamled idle || fail "yamled not back after SIGKILL"
[ "$(field yamled owner)" = api ] && [ "$(field yamled run_count)" = "$runs" ] || fail "yamled's counters lost"
[ "$(hcode /v1/agents/yamled)" = 200 ] && [ "$(hbody | jget "d['etag']")" = "$yetag" ] || fail "yamled's ETag changed"
[ "$(field yamled schedule)" = 50m ] || fail "yamled's schedule lost"
[ "$(field made state)" = stopped ] && [ "$(field made pid)" = null ] || fail "made started without its variable"
field made config_error | grep -q "AGENTD_T_WHO" || fail "made's config_error: $(ctl --json status made)"
ctl run made 2> "$T/err"; [ $? = 1 ] && grep -q "not started" "$T/err" || fail "run of a broken agent: $(cat "$T/err")"
ctl export made > /dev/null 2> "$T/err"; [ $? = 1 ] && grep -q "no longer loads" "$T/err" ||
	fail "export of a broken agent: $(cat "$T/err")"
[ "$(hcode -X PATCH -H "$J" -d '{"system_instruction": "fixed"}' /v1/agents/made)" = 200 ] || fail "fix: $(hbody)"
wait_until 20 state_is made idle || fail "made did not start once fixed"
ctl --json status made | jget "'config_error' in d" | grep -qx false || fail "config_error stays"

# DELETE: gone, the worker stopped, and still gone after a restart.
dpid=$(field made pid)
[ "$(hcode -X DELETE -H "If-Match: \"nope\"" /v1/agents/made)" = 412 ] || fail "stale delete: $(hbody)"
[ "$(hcode -X DELETE /v1/agents/made)" = 200 ] || fail "delete: $(hbody)"
wait_until 10 gone "$dpid" || fail "the deleted agent's worker runs on"
[ "$(hcode /v1/agents/made)" = 404 ] || fail "deleted agent still there"
ctl delete yamled | grep -q "yamled deleted" || fail "agentctl delete"
stop_agentd || fail "agentd exit code"
start_agentd
[ "$(ctl --json list | jget "[a['name'] for a in d]")" = '["filed"]' ] || fail "deleted agents came back: $(ctl --json list)"
exit 0
