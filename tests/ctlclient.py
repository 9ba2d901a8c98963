#!/usr/bin/env python3
"""A raw client of agentd's control socket, for the tests: it says what
agentctl never would (any request, half a frame, nothing at all) and holds
connections open.  Frames are a 4-byte big-endian length and one msgpack
map (proto/frame.h); the msgpack here is the subset agentd speaks.

  ctlclient.py SOCK request JSON    one request ({"cmd":..,"agent":..,"args":..},
                                    - to read it from stdin); prints the response
                                    as JSON
  ctlclient.py SOCK hold N [follow] N connections that send nothing (or follow
                                    events, which is never idle); prints "held K"
                                    (K connected) and keeps them until its stdin
                                    closes
  ctlclient.py SOCK partial BYTES   announces a frame of BYTES, sends half (then
                                    prints "sent"), and waits for agentd to close;
                                    prints what it answered (JSON) or "closed"
"""
import json
import socket
import struct
import sys


def pack(v):
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        head = bytes([0xa0 | n]) if n < 32 else b"\xdb" + struct.pack(">I", n)
        return head + b
    if isinstance(v, list):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + struct.pack(">I", len(v)) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(type(v))


def unpack(b, i=0):
    t = b[i]
    if t <= 0x7f:
        return t, i + 1
    if t >= 0xe0:
        return t - 256, i + 1
    if 0x80 <= t <= 0x8f:
        return unpack_map(b, i + 1, t & 15)
    if 0x90 <= t <= 0x9f:
        return unpack_list(b, i + 1, t & 15)
    if 0xa0 <= t <= 0xbf:
        n = t & 31
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    fixed = {0xc0: None, 0xc2: False, 0xc3: True}
    if t in fixed:
        return fixed[t], i + 1
    ints = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h",
            0xd2: ">i", 0xd3: ">q", 0xca: ">f", 0xcb: ">d"}
    if t in ints:
        n = struct.calcsize(ints[t])
        return struct.unpack(ints[t], b[i + 1:i + 1 + n])[0], i + 1 + n
    lens = {0xd9: ">B", 0xda: ">H", 0xdb: ">I", 0xdc: ">H", 0xdd: ">I", 0xde: ">H", 0xdf: ">I"}
    n = struct.calcsize(lens[t])
    count = struct.unpack(lens[t], b[i + 1:i + 1 + n])[0]
    i += 1 + n
    if t <= 0xdb:
        return b[i:i + count].decode(), i + count
    return unpack_list(b, i, count) if t <= 0xdd else unpack_map(b, i, count)


def unpack_list(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i)
        out.append(v)
    return out, i


def unpack_map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = unpack(b, i)
        out[k], i = unpack(b, i)
    return out, i


def frame(msg):
    body = pack(msg)
    return struct.pack(">I", len(body)) + body


def read_frame(s):
    """The next frame's map, or None at EOF."""
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    head = exactly(4)
    if head is None:
        return None
    body = exactly(struct.unpack(">I", head)[0])
    return None if body is None else unpack(body)[0]


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)	# a full backlog makes connect wait
    s.connect(path)
    s.settimeout(None)
    return s


def main():
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "request":
        s = connect(path)
        text = sys.stdin.read() if sys.argv[3] == "-" else sys.argv[3]
        s.sendall(frame({"t": "request", **json.loads(text)}))
        print(json.dumps(read_frame(s)))
    elif mode == "hold":
        held = []
        follow = frame({"t": "request", "cmd": "events", "args": {"follow": True, "limit": 1}})
        for _ in range(int(sys.argv[3])):
            try:
                held.append(connect(path))
            except OSError:
                break
            if sys.argv[4:] == ["follow"]:
                held[-1].sendall(follow)
        print(f"held {len(held)}", flush=True)
        sys.stdin.read()
    elif mode == "partial":
        s = connect(path)
        n = int(sys.argv[3])
        s.sendall(struct.pack(">I", n) + b"\x81" + b"x" * (n // 2))
        print("sent", flush=True)	# so agentd has read it: it is a client
        r = read_frame(s)
        print(json.dumps(r) if r is not None else "closed")


if __name__ == "__main__":
    main()
