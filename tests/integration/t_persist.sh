# State survives a restart of agentd: counters, session_id, pause.  And a
# SIGKILLed agentd leaves no worker behind (PR_SET_PDEATHSIG).
. ./lib.sh

{ header; cat <<YAML
  counter:
    task_config: {tool: new_files, directories: ["$T"]}
  sleeper:
    task_config: {tool: new_files, directories: ["$T"]}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "workers not idle"
ctl run counter >/dev/null; sleep 0.3; ctl run counter >/dev/null
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json status counter | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"run_count\"])') = 2 ]" || fail "runs"
ctl pause sleeper >/dev/null
sid=$(field counter session_id)
seq=$(events_json counter | jget "d[-1]['seq']")

# SIGKILL: the workers die with agentd.
pids="$(field counter pid) $(field sleeper pid)"
kill_agentd
sleep 1
# A dead worker may linger as a zombie of whatever init adopted it.
for p in $pids; do
	st=$(ps -o stat= -p "$p")
	[ -n "$st" ] && [ "${st#Z}" = "$st" ] && fail "worker $p outlived a SIGKILLed agentd ($st)"
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
