#!/usr/bin/env python3
"""Write the fuzzing seeds for fuzz_frame (stdlib only: msgpack by hand).

Each seed is one chunk-size byte (see fuzz_frame.c) followed by frames:
one valid message of every type, plus a few that exercise the wider
encodings (str8/16, float32/64, negative and 64-bit ints, array16/map16,
nesting near the bound) and a few broken ones the fuzzer can mutate from.
Usage: make_seeds.py [OUTDIR]   (default: the seeds/ directory beside it)
"""
import os, struct, sys

def pack(v):
    if v is None: return b"\xc0"
    if v is True: return b"\xc3"
    if v is False: return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128: return bytes([v])
        if -32 <= v < 0: return struct.pack(">b", v)
        if 0 <= v < 256: return b"\xcc" + bytes([v])
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float): return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32: return bytes([0xa0 | len(b)]) + b
        if len(b) < 256: return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, list):
        h = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return h + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        h = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return h + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)

def frame(body):
    if not isinstance(body, bytes): body = pack(body)
    return struct.pack(">I", len(body)) + body

def deep(n):
    v = 1
    for _ in range(n): v = [v]
    return v

valid = {
    "config": {"t": "config", "name": "a", "agent": {"model": "m", "max_steps": 5},
               "secrets": {"K": "v"}, "state_dir": "/var/lib/agentd/a"},
    "ready": {"t": "ready", "tools": ["system_info", "new_files"], "pid": 4242},
    "run": {"t": "run", "run_id": 7, "attempt": 1, "session_id": "s-1", "run_count": 3,
            "kwargs": {"query": "disk"}},
    "run_ack": {"t": "run_ack", "run_id": 7},
    "cancel": {"t": "cancel", "run_id": 7, "reason": "timeout"},
    "event": {"t": "event", "type": "tool_call_result", "payload": {"tool": "t", "ms": 1.5},
              "run_id": 7},
    "mem_store": {"t": "mem_store", "memory_type": "episodic", "role": "assistant",
                  "content": "h\u00e9 \u20ac" * 20, "metadata": {}},
    "mem_query": {"t": "mem_query", "req_id": 1, "memory_type": "episodic", "limit": 5,
                  "query": "q"},
    "mem_reply": {"t": "mem_reply", "req_id": 1, "items": [{"role": "user", "content": "x"}]},
    "result": {"t": "result", "run_id": 1, "ok": False, "error": "x", "retryable": True,
               "retry_after_ms": 1500, "cancelled": False, "usage": {"tokens": 300},
               "result": deep(30)},
    "log": {"t": "log", "level": "info", "msg": "x" * 300},
    "shutdown": {"t": "shutdown"},
    "request": {"t": "request", "cmd": "status", "agent": "a", "args": {"follow": True}},
    "response": {"t": "response", "ok": True, "code": -5,
                 "data": {"k%d" % i: i * 1000 for i in range(20)}},
    "record": {"t": "record", "event": {"id": 2 ** 62, "ts": -2 ** 40, "f": -0.0}},
    "mem_recall": {"t": "mem_recall", "req_id": 2, "query": "disk full", "limit": 5,
                   "memory_types": ["episodic", "long_term"]},
}

broken = {
    "bad_trailing": frame(pack({"t": "shutdown"}) + b"\x00"),
    "bad_type": frame({"t": "run", "run_id": "7"}),
    "bad_utf8": frame(b"\x81\xa1t\xa2\xc3\x28"),
    "bad_bigcount": frame(b"\x81\xa1t\xdd\xff\xff\xff\xff\x00"),
    "bad_length": b"\x00\x01\x00\x01" + b"\x80",
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds")
os.makedirs(out, exist_ok=True)
for i, (name, d) in enumerate(valid.items()):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([i * 5 % 64]) + frame(d) + frame(valid["run_ack"]))
for name, b in broken.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\x03" + b)
