#!/usr/bin/env python3
"""A raw client of agentd's HTTP API, for the tests: what curl does not
do on its own -- read an event stream and stop where told, hold
connections open, send half a request.  ADDR is unix:PATH or HOST:PORT.

  httpclient.py ADDR stream PATH [--last-event-id N] [--max N] [--token T] [--comments]
        read Server-Sent Events from PATH; prints each event's id and data
        as "ID JSON" lines, flushed, until --max events or the stream ends;
        exit 0 after --max, 3 when agentd closed the stream first; with
        --comments, comment lines too, as "# TEXT" 
  httpclient.py ADDR hold N     N connections that send nothing; prints
        "held K" once connected, keeps them until stdin closes, then prints
        how many agentd had closed meanwhile ("closed C")
  httpclient.py ADDR partial    half a request's headers, then nothing:
        prints "sent", then "closed" once agentd closes the connection
"""
import json
import socket
import sys


def connect(addr):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    return s


def stream(addr, path, last_id, limit, token, comments):
    s = connect(addr)
    head = "GET %s HTTP/1.1\r\nHost: agentd\r\nAccept: text/event-stream\r\n" % path
    if last_id is not None:
        head += "Last-Event-ID: %s\r\n" % last_id
    if token:
        head += "Authorization: Bearer %s\r\n" % token
    s.sendall((head + "\r\n").encode())
    f = s.makefile("rb")
    status = f.readline().decode()
    if " 200 " not in status:
        print("status " + status.strip(), flush=True)
        sys.exit(2)
    chunked = False
    while True:  # headers
        line = f.readline().decode().strip()
        if not line:
            break
        if line.lower() == "transfer-encoding: chunked":
            chunked = True

    def body():
        while True:
            if not chunked:
                data = f.read1(65536)
                if not data:
                    return
                yield data
                continue
            size = f.readline()
            if not size:
                return
            n = int(size.strip() or b"0", 16)
            if n == 0:
                return
            data = f.read(n)
            f.readline()
            yield data

    got, pending, ev = 0, b"", {}
    for data in body():
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            line = line.decode()
            if line == "":
                if "data" in ev:
                    print("%s %s" % (ev.get("id", "-"), ev["data"]), flush=True)
                    got += 1
                    if limit and got >= limit:
                        sys.exit(0)
                ev = {}
            elif line.startswith(":"):
                if comments:
                    print("#" + line[1:], flush=True)
            else:
                k, _, v = line.partition(":")
                ev[k] = v[1:] if v.startswith(" ") else v
    sys.exit(3)


def hold(addr, n):
    conns = []
    for _ in range(n):
        try:
            conns.append(connect(addr))
        except OSError:
            break
    print("held %d" % len(conns), flush=True)
    sys.stdin.read()
    closed = 0
    for c in conns:
        c.setblocking(False)
        try:
            closed += c.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print("closed %d" % closed, flush=True)


def partial(addr):
    s = connect(addr)
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: agentd\r\nX-Half: ")
    print("sent", flush=True)
    while s.recv(65536):
        pass
    print("closed", flush=True)


def main():
    addr, what = sys.argv[1], sys.argv[2]
    if what == "stream":
        args = sys.argv[4:]
        opt = lambda k: args[args.index(k) + 1] if k in args else None
        stream(addr, sys.argv[3], opt("--last-event-id"), int(opt("--max") or 0), opt("--token"),
               "--comments" in args)
    elif what == "hold":
        hold(addr, int(sys.argv[3]))
    elif what == "partial":
        partial(addr)


if __name__ == "__main__":
    main()
