# scripts/client/agentd.py, the seed's client: a seed-style script (the
# seed's calls, with its import changed) against a running agentd --
# create_agent, get_agent_status, pause/resume, update_agent_config,
# get_manager_status, delete_agent, errors as AgentdError with the API's
# code, message and pointer, and `async for event in
# event_router.stream(session_id=...)`, resumed with Last-Event-ID after
# its connection drops and across a SIGKILL and restart of agentd, nothing
# lost or repeated.
. ./lib.sh

{ header; cat <<YAML
  filed:
    task_config: {tool: system_info}
YAML
} | write_config
start_agentd
wait_until 20 all_idle || fail "workers not idle"
cat > "$T/seed_example.py" <<'PY'
import asyncio
import sys
import threading
import time

from agentd import AgentdError, BackgroundAgentManager, EventRouter, MemoryRouter

memory_store = MemoryRouter(memory_store_type="database")
event_router = EventRouter(event_store_type="database")
manager = BackgroundAgentManager(memory_store=memory_store, event_router=event_router)

system_health_config = {
    "agent_id": "system_health",
    "system_instruction": "Monitor system resources and performance",
    "task_config": {
        "tool": "system_info",
        "query": "Check CPU, memory, and disk usage",
        "thresholds": {"cpu_usage": 80, "memory_usage": 85, "disk_usage": 90},
    },
    "interval": 600,  # 10 minutes
    "max_retries": 2,
}
created = manager.create_agent(system_health_config)
assert created["owner"] == "api" and created["etag"], created

status = manager.get_agent_status("system_health")
print(f"Agent ID: {status['agent_id']}")
print(f"Running: {status['is_running']}")
print(f"Run Count: {status['run_count']}")
print(f"Error Count: {status['error_count']}")
print(f"Last Run: {status['last_run']}")
print(f"Available Tools: {status['available_tools']}")
print(f"Event Store: {status['event_store']}")
print(f"Memory Store: {status['memory_store']}")

manager_status = manager.get_manager_status()
print(f"Total Agents: {manager_status['total_agents']}")
print(f"Running Agents: {manager_status['running_agents']}")
print(f"Paused Agents: {manager_status['paused_agents']}")
print(f"Agent List: {sorted(a['name'] for a in manager_status['agents'])}")

manager.pause_agent("system_health")
assert manager.get_manager_status()["paused_agents"] == 1
manager.resume_agent("system_health")
updated = manager.update_agent_config("system_health", {"interval": 300}, etag=status["etag"])
assert updated["schedule"] == "300" and updated["pid"] == status["pid"], updated
try:
    manager.update_agent_config("system_health", {"interval": 60}, etag=status["etag"])
    sys.exit("a stale etag was taken")
except AgentdError as e:
    assert e.status == 412 and e.code == "precondition_failed", e
try:
    manager.create_agent({"agent_id": "broken", "model_config": {"provider": "nope", "model": "m"},
                          "interval": "soon"})
    sys.exit("a bad config was taken")
except AgentdError as e:
    assert e.status == 400 and e.code == "bad_request", e
    assert e.pointer == "/model_config/provider", e.pointer
    assert sorted(x["pointer"] for x in e.errors) == ["/interval", "/model_config/provider"], e.errors
    print(f"Refused: {e.pointer}: {e.errors[0]['message']}")
for call in (lambda: manager.create_agent({"agent_id": "filed"}),
             lambda: manager.update_agent_config("filed", {"interval": 5})):
    try:
        call()
        sys.exit("a file agent was changed")
    except AgentdError as e:
        assert e.status == 409 and e.code == "conflict", e


async def consume_events(session_id):
    """The seed's consumer; the stream drops once, halfway."""
    seen = []
    stream = event_router.stream(session_id=session_id, after=0)
    manager.run_agent("system_health")
    async for event in stream:
        print(f"Event: {event.type} Agent: {event.agent_name} seq {event.seq}")
        seen.append(event)
        done = sum(e.type == "background_task_completed" for e in seen)
        if event.type == "background_task_completed" and done == 1:
            stream.close()  # a dropped connection: the next read connects again
            manager.run_agent("system_health")
        elif event.type == "background_task_completed":
            break
    return seen

seen = asyncio.run(consume_events(status["session_id"]))
types = [e.type for e in seen if e.type.startswith("background_task")]
assert types == ["background_task_started", "background_task_completed"] * 2, types
seqs = [e.seq for e in seen]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # nothing lost, nothing twice
assert all(e.payload.session_id == status["session_id"] for e in seen if e.type != "background_agent_status")

# While agentd cannot be reached the stream waits and tries again.
errs = []
def dead_socket():
    try:
        next(iter(EventRouter(socket_path=sys.argv[0] + ".nosock").stream(retry_delay=0.05)))
    except Exception as e:
        errs.append(e)
waiting = threading.Thread(target=dead_socket, daemon=True)
waiting.start()
waiting.join(2)
assert waiting.is_alive() and not errs, errs

manager.delete_agent("system_health")
deadline = time.monotonic() + 60  # it is listed, stopping, until its worker has exited
while True:
    try:
        manager.get_agent_status("system_health")
    except AgentdError as e:
        assert e.status == 404 and e.code == "unknown_agent", e
        break
    if time.monotonic() > deadline:
        sys.exit("deleted agent still there")
    time.sleep(0.05)
print("seed example done")
PY
cd "$T" && PYTHONPATH="$OLDPWD/../../scripts/client" AGENTD_HTTP_SOCKET="$HTTP_SOCK" \
	timeout 120 python3 seed_example.py > "$T/example.out" 2>&1 || fail "the seed example: $(cat "$T/example.out")"
cd "$OLDPWD"

# A real drop: agentd killed and started again under a running stream,
# which connects again with Last-Event-ID -- every event once, in order.
cat > "$T/follow.py" <<'PY'
import sys
from agentd import EventRouter
for event in EventRouter().stream(agent=sys.argv[1], after=0, retry_delay=0.2):
    print(event.id, event.seq, event.type, flush=True)
PY
(cd "$T" && PYTHONPATH="$OLDPWD/../../scripts/client" AGENTD_HTTP_SOCKET="$HTTP_SOCK" exec python3 follow.py filed \
	> "$T/follow.out" 2> "$T/follow.err") &
FOLLOW=$!
at_exit 'kill $FOLLOW'
completed() { [ "$(grep -c background_task_completed "$T/follow.out")" -ge "$1" ]; }
ctl run filed > /dev/null || fail "run filed"
wait_until 30 completed 1 || fail "the stream did not see the run: $(cat "$T/follow.out" "$T/follow.err")"
kill_agentd
start_agentd
wait_until 20 all_idle || fail "workers not idle after the restart"
ctl run filed > /dev/null || fail "run filed again"
wait_until 60 completed 2 || fail "the stream did not come back: $(cat "$T/follow.out" "$T/follow.err")"
python3 - "$T/follow.out" <<'PY' || fail "the stream lost or repeated events: $(cat "$T/follow.out")"
import sys
rows = [line.split() for line in open(sys.argv[1])]
ids, seqs = [int(r[0]) for r in rows], [int(r[1]) for r in rows]
assert ids == sorted(set(ids)), ids
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
PY
grep -qx "Agent ID: system_health" "$T/example.out" && grep -qx "Total Agents: 2" "$T/example.out" &&
	grep -q "^Refused: /model_config/provider: background_agents.broken.model_config.provider: unknown provider" "$T/example.out" &&
	grep -qx "seed example done" "$T/example.out" || fail "the example's output: $(cat "$T/example.out")"
exit 0
