#!/usr/bin/env python3
"""Write a few valid frames as fuzzing seeds (stdlib only: msgpack by hand)."""
import os, struct, sys

def pack(v):
    if v is None: return b"\xc0"
    if v is True: return b"\xc3"
    if v is False: return b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode(); return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list): return bytes([0x90 | len(v)]) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)

def frame(d):
    body = pack(d); return struct.pack(">I", len(body)) + body

seeds = {
    "ready": {"t": "ready", "tools": ["system_info"], "pid": 7},
    "result": {"t": "result", "run_id": 1, "ok": False, "error": "x", "retryable": True},
    "event": {"t": "event", "type": "tool_call_result", "payload": {"tool": "t"}},
    "mem": {"t": "mem_query", "req_id": 1, "memory_type": "episodic", "limit": 5},
    "request": {"t": "request", "cmd": "status", "agent": "a", "args": {"follow": True}},
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds")
os.makedirs(out, exist_ok=True)
for name, d in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\x07" + frame(d) + frame(d))
