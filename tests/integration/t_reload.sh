# SIGHUP: a changed agent restarts, an unchanged one keeps its pid and
# schedule, an added one starts, a removed one stops; a broken file is
# refused and everything stays as it was.  agentctl reload reports the same.
. ./lib.sh

agent() { # name interval
	cat <<YAML
  $1:
    task_config: {tool: new_files, directories: ["$T"], note: "$3"}
    interval: $2
YAML
}
{ header; agent keep 300ms v1; agent change 1h v1; agent drop 1h v1; } | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"
keep_pid=$(field keep pid); change_pid=$(field change pid); drop_pid=$(field drop pid)
keep_next=$(field keep next_run)

{ header; agent keep 300ms v1; agent change 1h v2; agent added 1h v1; } | write_config
kill -HUP "$AGENTD_PID"
wait_until 5 state_is added idle || fail "added agent not started"
wait_until 5 sh -c "! kill -0 $drop_pid" || fail "removed agent's worker still alive"
ctl status drop >/dev/null 2>&1; [ $? = 3 ] || fail "removed agent still listed"
wait_until 5 state_is change idle || fail "changed agent not back"
[ "$(field change pid)" != "$change_pid" ] || fail "changed agent not restarted"
[ "$(field keep pid)" = "$keep_pid" ] || fail "unchanged agent restarted"
grep -q "reloaded .*1 added, 1 removed, 1 changed, 1 unchanged" "$T/agentd.log" || fail "reload summary"

# A broken file: refused, nothing touched.
runs=$(field keep run_count)
printf 'background_agents:\n  keep:\n    interval: [oops\n' > "$T/agents.yaml"
kill -HUP "$AGENTD_PID"
wait_until 3 grep -q "reload refused" "$T/agentd.log" || fail "broken file not refused"
sleep 0.5
[ "$(field keep pid)" = "$keep_pid" ] || fail "broken reload touched keep"
[ "$(field keep run_count)" -gt "$runs" ] || fail "keep stopped running after a broken reload"
kill -0 "$AGENTD_PID" || fail "agentd died on a broken file"
out=$(ctl reload 2>&1); rc=$?
[ $rc = 1 ] || fail "agentctl reload of a broken file exit $rc"
echo "$out" | grep -q "agents.yaml:[0-9]*:[0-9]*: " || fail "reload error lacks file:line: $out"

{ header; agent keep 300ms v1; } | write_config
ctl --json reload | jget "d['removed']" | grep -q change || fail "agentctl reload report"
exit 0
