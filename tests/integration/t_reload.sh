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
# Its schedule too: a fixed rate, so its next run is still a whole number
# of 300 ms intervals after the one before the reload.
ms() { python3 -c 'import datetime,sys; print(round(datetime.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).timestamp() * 1000))' "$1"; }
shift_ms=$(( ($(ms "$(field keep next_run)") - $(ms "$keep_next")) % 300 ))
[ "$shift_ms" = 0 ] || fail "the unchanged agent's schedule moved by $shift_ms ms (next_run $keep_next before)"
grep -q "reloaded .*1 added, 1 removed, 1 changed, 1 unchanged" "$T/agentd.log" || fail "reload summary"

# A broken file: refused, nothing touched.
runs=$(field keep run_count)
printf 'background_agents:\n  keep:\n    interval: [oops\n' > "$T/agents.yaml"
kill -HUP "$AGENTD_PID"
wait_until 3 grep -q "reload refused" "$T/agentd.log" || fail "broken file not refused"
ran_since() { [ "$(field keep run_count)" -gt "$1" ]; }
wait_until 10 ran_since "$runs" || fail "keep stopped running after a broken reload"
[ "$(field keep pid)" = "$keep_pid" ] || fail "broken reload touched keep"
kill -0 "$AGENTD_PID" || fail "agentd died on a broken file"
out=$(ctl reload 2>&1); rc=$?
[ $rc = 1 ] || fail "agentctl reload of a broken file exit $rc"
echo "$out" | grep -q "agents.yaml:[0-9]*:[0-9]*: " || fail "reload error lacks file:line: $out"

{ header; agent keep 300ms v1; } | write_config
ctl --json reload | jget "d['removed']" | grep -q change || fail "agentctl reload report"
exit 0
