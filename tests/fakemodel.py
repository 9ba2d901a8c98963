#!/usr/bin/env python3
"""
A loopback stand-in for the OpenAI Chat Completions and Anthropic Messages
APIs and OpenAI's embeddings, for tests only (the real services are not
reachable here).

  fakemodel.py --script FILE --log FILE [--vectors FILE]

Binds 127.0.0.1 on a free port and prints "PORT n". The first path segment
selects a scenario: base_url http://127.0.0.1:n/<scenario>/v1 (OpenAI) or
http://127.0.0.1:n/<scenario> (Anthropic). The script maps each scenario to
a list of responses, served in order (the last one repeats):
  {"status": 200, "headers": {...}, "body": {...} | "raw": "text",
   "content_type": "...", "delay": s, "hang": true, "size": bytes}
Bodies given as {"openai_text": "..."} / {"openai_calls": [[name, args]]} /
{"anthropic_text": ...} / {"anthropic_calls": ...} are expanded into the
providers' real response shapes (with "usage": {...} replacing their usage,
"usage": null leaving it out); {"openai_echo_tool": true} answers with the
content of the request's last role:tool message (what a tool returned). In
every string of a body, %API_KEY% becomes the key the request carried and
%TOOL_RESULTS% every role:tool content of the request (a provider or a model
that echoes them). Every request is appended to the log as one
JSON line: scenario, path, headers, body.

POST .../embeddings answers as OpenAI's does (platform.openai.com/docs/
api-reference/embeddings): {"object": "list", "data": [{"object":
"embedding", "index", "embedding"}], "model", "usage"}.  A step {"embed":
true} gives each input its vector from the fixture (--vectors, default
tests/embed_fixture.json: the sum of its words' vectors, normalized; a text
with no known word gets one on the last dimension), as floats or, with
"embed": "base64", as base64 of little-endian float32 whatever the request
asked for (as some servers do); "dims": N makes them N long (a wrong
dimension).  An error step is a status with OpenAI's error body, as for
chat.  A step with no "embed" and no status embeds too.
"""
import argparse, base64, json, math, os, re, struct, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counters, lock = {}, threading.Lock()


def openai(text=None, calls=None, finish=None):
    msg = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        msg["tool_calls"] = [{"id": f"call_{i}_{name}", "type": "function",
                              "function": {"name": name, "arguments": json.dumps(args)}}
                             for i, (name, args) in enumerate(calls)]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": "gpt-fake", "choices": [{"index": 0, "message": msg, "logprobs": None,
            "finish_reason": finish or ("tool_calls" if calls else "stop")}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


def anthropic(text=None, calls=None, stop=None):
    content = [{"type": "text", "text": text}] if text else []
    for i, (name, args) in enumerate(calls or []):
        content.append({"type": "tool_use", "id": f"toolu_{i}_{name}", "name": name, "input": args})
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
            "content": content, "stop_reason": stop or ("tool_use" if calls else "end_turn"),
            "stop_sequence": None, "usage": {"input_tokens": 13, "output_tokens": 5}}


def last_tool_result(req):
    tools = [m.get("content") for m in (req or {}).get("messages", []) if m.get("role") == "tool"]
    return tools[-1] if tools else "(no tool result)"


def with_usage(reply, body):
    if "usage" in body:
        reply.pop("usage")
        if body["usage"] is not None:
            reply["usage"] = body["usage"]
    return reply


def placeholders(headers, req):
    auth = headers.get("authorization", "")
    key = auth[7:] if auth.startswith("Bearer ") else headers.get("x-api-key", "")
    tools = [str(m.get("content")) for m in (req or {}).get("messages", []) if m.get("role") == "tool"]
    return {"%API_KEY%": key, "%TOOL_RESULTS%": " | ".join(tools)}


def subst(v, values):
    if isinstance(v, str):
        for k, x in values.items():
            v = v.replace(k, x)
        return v
    if isinstance(v, list):
        return [subst(x, values) for x in v]
    if isinstance(v, dict):
        return {k: subst(x, values) for k, x in v.items()}
    return v


def expand(body, req=None):
    if isinstance(body, dict):
        if body.get("openai_echo_tool"):
            return openai(last_tool_result(req))
        if "openai_text" in body or "openai_calls" in body:
            return with_usage(openai(body.get("openai_text"), body.get("openai_calls"), body.get("finish")), body)
        if "anthropic_text" in body or "anthropic_calls" in body:
            return with_usage(anthropic(body.get("anthropic_text"), body.get("anthropic_calls"), body.get("stop")), body)
    return body


def text_vector(fixture, text):
    dim = fixture["dimensions"]
    v = [0.0] * dim
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        for i, x in enumerate(fixture["words"].get(w, [])):
            v[i] += x
    n = math.sqrt(sum(x * x for x in v))
    if n == 0:
        v[-1], n = 1.0, 1.0
    return [x / n for x in v]


def embeddings(fixture, step, req):
    inputs = (req or {}).get("input", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    data = []
    for i, text in enumerate(inputs):
        v = text_vector(fixture, text)
        if "dims" in step:
            v = (v + [0.0] * step["dims"])[:step["dims"]]
        emb = base64.b64encode(struct.pack("<%df" % len(v), *v)).decode() \
            if step.get("embed") == "base64" else v
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": (req or {}).get("model", "fake"),
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(n)
        scenario = self.path.strip("/").split("/")[0]
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with lock:
            with open(self.server.log, "a") as f:
                f.write(json.dumps({"t": time.time(), "scenario": scenario, "path": self.path,
                                    "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body}) + "\n")
            steps = self.server.script.get(scenario, [{"status": 404, "body": {
                "error": {"message": f"no scenario {scenario}", "type": "invalid_request_error"}}}])
            i = counters.get(scenario, 0)
            counters[scenario] = i + 1
            step = steps[min(i, len(steps) - 1)]
        if step.get("hang"):
            time.sleep(3600)
        time.sleep(step.get("delay", 0))
        status = step.get("status", 200)
        if "size" in step:
            data = b'{"pad":"' + b"x" * step["size"] + b'"}'
        elif self.path.endswith("/embeddings") and ("embed" in step or "status" not in step):
            data = json.dumps(embeddings(self.server.vectors, step, body)).encode()
        elif "raw" in step:
            data = step["raw"].encode()
        else:
            data = json.dumps(subst(expand(step.get("body", {}), body),
                                    placeholders(self.headers, body))).encode()
        self.send_response(status)
        self.send_header("content-type", step.get("content_type", "application/json"))
        self.send_header("request-id", f"req_fake_{i}")
        for k, v in step.get("headers", {}).items():
            self.send_header(k, str(v))
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--vectors", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "embed_fixture.json"))
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.script = json.load(open(a.script))
    srv.log = a.log
    srv.vectors = json.load(open(a.vectors))
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
