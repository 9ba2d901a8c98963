# A worker that stops answering (SIGSTOP: alive but silent) is caught by the
# run acknowledgement deadline, killed and restarted, and the run retried.
. ./lib.sh

{ header | sed 's/ack_timeout: 5s/ack_timeout: 700ms/'; cat <<YAML
  frozen:
    task_config: {tool: system_info}
    max_retries: 1
    retry_delay: 100ms
    restart: {policy: always, stable_after: 0s}
YAML
} | write_config
start_agentd
wait_until 5 all_idle || fail "worker not idle"
old=$(field frozen pid)
kill -STOP "$old"
ctl run frozen >/dev/null || fail "run refused"
wait_until 5 sh -c "[ \"\$($B/agentctl -s $SOCK --json status frozen | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"pid\"])')\" != $old ]" || fail "silent worker not replaced"
why=$(events_json frozen | jget "[e['payload']['reason'] for e in d if e['type']=='worker_exited'][-1]")
note "silent worker: $why"
echo "$why" | grep -q "not acknowledged" || fail "reason: $why"
# The retry runs on the new worker and succeeds.
wait_until 5 sh -c "[ \$($B/agentctl -s $SOCK --json events -n 100 frozen | python3 -c 'import json,sys;print(len([e for e in json.load(sys.stdin) if e[\"type\"]==\"background_task_completed\"]))') = 1 ]" || fail "retry did not complete"
[ "$(field frozen run_count)" = 1 ] || fail "the retry counted as a new run"
exit 0
