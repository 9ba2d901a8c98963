#!/usr/bin/env python3
"""
An MCP server that gives back what it was given, for the secrets test: a
server that echoes a bearer token or its environment must not put them in
agentd's events, memory, status or log.

  echoserver.py [--show NAME]...          stdio
  echoserver.py --http PORTFILE           Streamable HTTP (JSON answers) on
                                          127.0.0.1, its port written to PORTFILE

Tools:
  echo     {text}: answers with its arguments as JSON; every call's arguments
           are appended as a JSON line to $ECHO_LOG (when set), so the test
           sees what the tool really received; a text "fail:REST" is a
           failed call (isError) whose message is REST
  environ  (stdio) answers with its environment, one NAME=VALUE per line
  crash    (stdio) prints the --show variables on stderr and exits 1, so
           its last words become the server's error
  headers  (http) answers with the request's headers, and the bearer token
           of Authorization alone ("token: ...")

On stdio, each --show NAME variable is printed on stderr at start and sent
as a notifications/message with every answer (lines a client logs).
"""
import argparse, json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--http")
ap.add_argument("--show", action="append", default=[])
opts = ap.parse_args()
log = open(os.environ["ECHO_LOG"], "a") if os.environ.get("ECHO_LOG") else None


def shown():
    return " ".join(f"{n}={os.environ.get(n, '')}" for n in opts.show)


def tool(name):
    return {"name": name, "description": f"the {name} tool",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}


def text(t):
    return {"content": [{"type": "text", "text": t}]}


def call(name, args, headers):
    if name == "echo":
        if log:
            log.write(json.dumps(args) + "\n")
            log.flush()
        t = str(args.get("text", ""))
        if t.startswith("fail:"):
            return {**text(t[5:]), "isError": True}
        return text(json.dumps(args))
    if name == "environ" and headers is None:
        return text("\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())))
    if name == "crash" and headers is None:
        sys.stderr.write(f"echoserver: giving up with {shown()}\n")
        sys.stderr.flush()
        sys.exit(1)
    if name == "headers" and headers is not None:
        auth = headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else auth
        return text(json.dumps(headers) + f"\ntoken: {token}")
    return None


def answer(m, headers):
    """The answer to one message, or None for a notification."""
    method, mid = m.get("method"), m.get("id")
    if mid is None:
        return None
    if method == "initialize":
        result = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "echo", "version": "1.0"}}
    elif method == "tools/list":
        names = ["echo", "headers"] if headers is not None else ["echo", "environ", "crash"]
        result = {"tools": [tool(n) for n in names]}
    elif method == "tools/call":
        result = call(m["params"]["name"], m["params"].get("arguments") or {}, headers)
        if result is None:
            return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "Unknown tool"}}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}}
    return {"jsonrpc": "2.0", "id": mid, "result": result}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("mcp-session-id", "echo-session")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        m = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        a = answer(m, {k.lower(): v for k, v in self.headers.items()})
        if a is None:
            self.reply(202)
        else:
            self.reply(200, json.dumps(a).encode())

    def do_GET(self):
        self.reply(405)

    def do_DELETE(self):
        self.reply(200)


def serve_stdio():
    if opts.show:
        sys.stderr.write(f"echoserver: started with {shown()}\n")
        sys.stderr.flush()
    for line in sys.stdin:
        a = answer(json.loads(line), None)
        if a is None:
            continue
        if opts.show:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                                         "params": {"level": "info", "data": shown()}}) + "\n")
        sys.stdout.write(json.dumps(a) + "\n")
        sys.stdout.flush()


if opts.http:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(opts.http + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(opts.http + ".tmp", opts.http)
    srv.serve_forever()
else:
    serve_stdio()
