# State survives a restart of agentd: counters, session_id, pause.  And a
# SIGKILLed agentd leaves no worker behind (PR_SET_PDEATHSIG), not even one
# busy in a tool that never looks at its pipe (an idle worker would exit on
# the pipe's EOF anyway).
. ./lib.sh

{ header; cat <<YAML
  counter:
    task_config: {tool: new_files, directories: ["$T"]}
  sleeper:
    task_config: {tool: new_files, directories: ["$T"]}
  busy:
    task_config: {tool: test_spin, args: {seconds: 60}}
    env: {AGENTD_TEST_HOOKS: "1"}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"
ctl run counter >/dev/null; sleep 0.3; ctl run counter >/dev/null
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status counter | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') = 2 ]" || fail "runs"
ctl pause sleeper >/dev/null
sid=$(field counter session_id)
seq=$(events_json counter | jget "d[-1]['seq']")

# SIGKILL: the workers die with agentd, the busy one mid-run.
ctl run busy >/dev/null
wait_until 10 sh -c "AGENTD_SOCKET=$SOCK $B/agentctl --json events -n 100 busy | grep -q tool_call_started" ||
	fail "busy did not start its tool"
pids="$(field counter pid) $(field sleeper pid) $(field busy pid)"
kill_agentd
# A dead worker may linger as a zombie of whatever init adopted it.
for p in $pids; do
	wait_until 10 gone "$p" || fail "worker $p outlived a SIGKILLed agentd ($(ps -o stat=,args= -p "$p"))"
done

start_agentd
wait_until 5 state_is counter idle || fail "counter not back"
[ "$(field counter run_count)" = 2 ] || fail "run_count not restored"
[ "$(field counter session_id)" = "$sid" ] || fail "session_id changed"
[ "$(field sleeper paused)" = true ] || fail "pause not restored"
ctl run counter >/dev/null
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status counter | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') = 3 ]" || fail "run after restart"
events_json counter | jget "d[-1]['seq'] > $seq and all(d[i]['seq']+1==d[i+1]['seq'] for i in range(len(d)-1))" |
	grep -qx true || fail "seq did not continue across restarts"
exit 0
