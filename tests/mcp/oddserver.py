#!/usr/bin/env python3
"""
An MCP server over stdio that does, on purpose, the legal-but-unusual and
the wrong things the npm reference servers never do, so the client's
handling of them is tested:  oddserver.py MODE

  normal     paginated tools/list (two pages via nextCursor), then for
             every tools/call: first a ping and a sampling request to the
             client (which must answer them), then the result; an unknown
             tool gets a JSON-RPC error, not an isError result
  noisy      prints a banner line and a blank line on stdout before speaking
  badtools   lists tools with invalid names, a schema over 64 KiB, a
             missing schema, and one good tool
  version    answers initialize with protocolVersion 1999-01-01
  changing   after the first call sends notifications/tools/list_changed
             and lists a second tool from then on
  deaf       once its tools are listed, stops reading and sends requests
             (ping, roots/list) without end
  orphan     leaves a child holding its stdin and stdout, and half a
             second after its tools are listed exits with status 3
             (answering no call)
  late       tool slow answers after 2 s (past the client's timeout, so
             the answer is late); quick first answers with a wrong id,
             then rightly; nul answers text with a NUL inside
  chatty     once its tools are listed, sends notifications/message
             without end
  relist     once its tools are listed, sends $ODD_RELISTS (3000)
             notifications/tools/list_changed from a thread, one a
             millisecond, while it goes on answering; then logs
             {"odd_sent": N}
  http-sseflood PORT
             Streamable HTTP on 127.0.0.1:PORT whose tools/call answer is
             an event stream of data: lines that never ends the event

Every message the client sends is appended as a JSON line to $ODD_LOG
(when set), so the test can see what the client answered.
"""
import json, os, subprocess, sys, threading, time

mode = sys.argv[1] if len(sys.argv) > 1 else "normal"
log = open(os.environ["ODD_LOG"], "a") if os.environ.get("ODD_LOG") else None
calls = 0
next_id = 1000
out_lock = threading.Lock()


def send(m):
    with out_lock:
        sys.stdout.write(json.dumps(m) + "\n")
        sys.stdout.flush()


def note(m):
    if log:
        with out_lock:
            log.write(json.dumps(m) + "\n")
            log.flush()


def recv():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    m = json.loads(line)
    note(m)
    return m


def ask(method, params):
    """A request to the client; returns its answer (notifications between are skipped)."""
    global next_id
    next_id += 1
    send({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params})
    while True:
        m = recv()
        if m.get("id") == next_id and "method" not in m:
            return m


def tool(name, schema=None):
    return {"name": name, "description": f"the {name} tool",
            "inputSchema": schema if schema is not None else {"type": "object", "properties": {}}}


def tools_page(cursor):
    if mode == "badtools":
        return {"tools": [tool("bad name!"), tool("x" * 200), {"name": "noschema"},
                          tool("huge", {"type": "object", "description": "y" * 70000}),
                          tool("good")]}
    if mode == "changing":
        return {"tools": [tool("first")] + ([tool("second")] if calls else [])}
    if mode == "late":
        return {"tools": [tool("slow"), tool("quick"), tool("nul")]}
    if mode in ("deaf", "orphan", "chatty", "relist", "http-sseflood"):
        return {"tools": [tool("alpha")]}
    if cursor is None:
        return {"tools": [tool("alpha"), tool("beta.v2")], "nextCursor": "page2"}
    return {"tools": [tool("gamma")]}


def flood(make):
    """Send make(i) for ever (until the client is gone)."""
    i = 0
    try:
        while True:
            i += 1
            send(make(i))
    except (BrokenPipeError, OSError):
        os._exit(0)


def relists():
    n = int(os.environ.get("ODD_RELISTS", "3000"))
    for _ in range(n):
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        time.sleep(0.001)
    note({"odd_sent": n})


def after_listed():
    """What the flooding modes do once the client has their tools."""
    if mode == "deaf":
        flood(lambda i: {"jsonrpc": "2.0", "id": i, "method": "ping" if i % 2 else "roots/list"})
    if mode == "orphan":
        time.sleep(0.5)
        os._exit(3)
    if mode == "chatty":
        flood(lambda i: {"jsonrpc": "2.0", "method": "notifications/message",
                         "params": {"level": "info", "data": f"chatter {i}"}})
    if mode == "relist" and not getattr(after_listed, "started", False):
        after_listed.started = True
        threading.Thread(target=relists, daemon=True).start()


def call_result(name, mid):
    """The late mode's tools."""
    if name == "slow":
        time.sleep(2)
        text = "late slow"
    elif name == "quick":
        send({"jsonrpc": "2.0", "id": mid + 1000, "result": {"content": [{"type": "text", "text": "wrong id"}]}})
        text = "quick"
    else:
        text = "before\u0000after"
    send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})


def http_sseflood(port):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, status, ctype, body):
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("mcp-session-id", "odd-session")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_DELETE(self):
            self.reply(200, "application/json", b"{}")

        def do_POST(self):
            m = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            note(m)
            method, mid = m.get("method"), m.get("id")
            if mid is None:
                return self.reply(202, "application/json", b"")
            if method == "initialize":
                r = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
                     "serverInfo": {"name": "odd", "version": "1.0"}}
            elif method == "tools/list":
                r = tools_page(None)
            elif method != "tools/call":
                r = {}
            else:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                line = b"data: " + b"x" * 65536 + b"\n"
                try:
                    while True:
                        self.wfile.write(line)
                except (BrokenPipeError, ConnectionResetError):
                    return
            self.reply(200, "application/json", json.dumps({"jsonrpc": "2.0", "id": mid, "result": r}).encode())

    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


if mode == "http-sseflood":
    http_sseflood(int(sys.argv[2]))
if mode == "orphan":  # a child that keeps our pipes open after we are gone
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", os.environ.get("ODD_LOG", "odd")])
if mode == "noisy":
    sys.stdout.write("odd server 1.0 starting up\n\n")
    sys.stdout.flush()

while True:
    m = recv()
    method, mid = m.get("method"), m.get("id")
    if mid is None:
        continue
    if method == "initialize":
        v = "1999-01-01" if mode == "version" else m["params"]["protocolVersion"]
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": v,
              "capabilities": {"tools": {"listChanged": True}},
              "serverInfo": {"name": "odd", "version": "1.0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid,
              "result": tools_page((m.get("params") or {}).get("cursor"))})
        after_listed()
    elif method == "tools/call" and mode == "late":
        call_result(m["params"]["name"], mid)
    elif method == "tools/call":
        name = m["params"]["name"]
        known = [t["name"] for t in tools_page(None)["tools"]] + ["gamma"]
        if name not in known:
            send({"jsonrpc": "2.0", "id": mid,
                  "error": {"code": -32602, "message": f"Unknown tool: {name}"}})
            continue
        pong = ask("ping", {})
        sampled = ask("sampling/createMessage", {"messages": [], "maxTokens": 1})
        calls += 1
        if mode == "changing" and calls == 1:
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        text = json.dumps({"tool": name, "ping": pong.get("result"),
                           "sampling_error": (sampled.get("error") or {}).get("code")})
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
