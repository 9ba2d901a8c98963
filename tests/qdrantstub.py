#!/usr/bin/env python3
"""
A loopback stand-in for Qdrant's REST API, for tests only: no Qdrant server
can be installed on these machines (no Debian or npm package), so agentd's
qdrant backend is tested against this, which speaks the documented wire
format (api.qdrant.tech) for what agentd uses, errors included.

  qdrantstub.py --log FILE [--state FILE] [--faults FILE] [--api-key KEY] [--port N]

Binds 127.0.0.1 (on --port, else a free one) and prints "PORT n".  Every
request is appended to the log as one JSON line: t (when it came), method,
path, query, headers, body.  With --state the collections are kept in that file (written
after every change, read at start), so a stub killed and started again has
what it had, as a Qdrant with storage does.  --faults names a file read at
every request: {"status": 503} answers every request with that status and
Qdrant's error envelope, {"hang": seconds} answers nothing for that long;
absent or {} is no fault.

What it answers (each success {"result", "status": "ok", "time"}, each
error {"status": {"error": "..."}, "time"} with Qdrant's status and text):
  GET  /collections                      {"collections": [{"name"}]}
  GET  /collections/{c}                  its info (config.params.vectors) | 404
  PUT  /collections/{c}                  {"vectors": {"size", "distance"}} -> true | 409
  PUT  /collections/{c}/index            {"field_name", "field_schema"} -> completed
  PUT  /collections/{c}/points           {"points": [{"id", "vector", "payload"}]};
                                         a vector of another size -> 400
  POST /collections/{c}/points/query     {"query": [vector], "limit", "filter",
                                         "with_payload"} -> {"points": [{"id",
                                         "version", "score"}]}: exact cosine
  POST /collections/{c}/points/delete    {"filter"} | {"points": [ids]}
  POST /collections/{c}/points/scroll    {"limit", "filter"}: every point, with
                                         payload and vector (for the tests)
Filters: must / must_not / should of {"key", "match": {"value"} | {"any"}},
{"key", "range": {"lt", "lte", "gt", "gte"}}, {"has_id": [ids]}.  With
--api-key, a request without the api-key header is refused 401 and one with
another key 403, in plain text as Qdrant's middleware does.
"""
import argparse, json, math, os, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

lock = threading.Lock()
collections = {}   # name -> {"size", "distance", "points": {id: {vector, payload, version}}, "index": {}}
op_id = [0]


def save(args):
    if args.state:
        tmp = args.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump({n: dict(c, points={str(k): v for k, v in c["points"].items()})
                       for n, c in collections.items()}, f)
        os.replace(tmp, args.state)


def load(args):
    if args.state and os.path.exists(args.state):
        with open(args.state) as f:
            for n, c in json.load(f).items():
                c["points"] = {int(k): v for k, v in c["points"].items()}
                collections[n] = c


def normalize(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n else v


def cond_ok(cond, pid, payload):
    if "has_id" in cond:
        return pid in cond["has_id"]
    if "must" in cond or "should" in cond or "must_not" in cond:
        return filter_ok(cond, pid, payload)
    v = payload.get(cond["key"])
    if "match" in cond:
        m = cond["match"]
        if "value" in m:
            return v == m["value"]
        if "any" in m:
            return v in m["any"]
        raise ValueError("unsupported match")
    if "range" in cond:
        r = cond["range"]
        if not isinstance(v, (int, float)):
            return False
        return all(op not in r or f(v, r[op]) for op, f in (
            ("lt", lambda a, b: a < b), ("lte", lambda a, b: a <= b),
            ("gt", lambda a, b: a > b), ("gte", lambda a, b: a >= b)))
    raise ValueError("unsupported condition")


def filter_ok(flt, pid, payload):
    if not flt:
        return True
    if any(not cond_ok(c, pid, payload) for c in flt.get("must") or []):
        return False
    if any(cond_ok(c, pid, payload) for c in flt.get("must_not") or []):
        return False
    should = flt.get("should") or []
    return not should or any(cond_ok(c, pid, payload) for c in should)


class Error(Exception):
    def __init__(self, status, text):
        self.status, self.text = status, text


def need(name):
    if name not in collections:
        raise Error(404, f"Not found: Collection `{name}` doesn't exist!")
    return collections[name]


def check_vector(c, v):
    if not isinstance(v, list) or not all(isinstance(x, (int, float)) for x in v):
        raise Error(400, "Format error in JSON body: data did not match any variant of untagged enum VectorStruct")
    if len(v) != c["size"]:
        raise Error(400, f"Wrong input: Vector dimension error: expected dim: {c['size']}, got {len(v)}")


def completed():
    op_id[0] += 1
    return {"operation_id": op_id[0], "status": "completed"}


def info(c):
    return {"status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
            "points_count": len(c["points"]), "segments_count": 1,
            "config": {"params": {"vectors": {"size": c["size"], "distance": c["distance"]},
                                  "shard_number": 1, "replication_factor": 1,
                                  "write_consistency_factor": 1, "on_disk_payload": True},
                       "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                       "optimizer_config": {}, "wal_config": {}},
            "payload_schema": {k: {"data_type": t, "points": len(c["points"])}
                               for k, t in c["index"].items()}}


def route(args, method, parts, body):
    """The result, or an Error."""
    if parts == ["collections"] and method == "GET":
        return {"collections": [{"name": n} for n in sorted(collections)]}
    if len(parts) < 2 or parts[0] != "collections":
        raise Error(404, "")
    name, rest = parts[1], parts[2:]
    if not rest:
        if method == "GET":
            return info(need(name))
        if method == "PUT":
            if name in collections:
                raise Error(409, f"Wrong input: Collection `{name}` already exists!")
            vec = (body or {}).get("vectors")
            if not isinstance(vec, dict) or not isinstance(vec.get("size"), int) or vec["size"] < 1 \
                    or vec.get("distance") not in ("Cosine", "Euclid", "Dot", "Manhattan"):
                raise Error(400, "Format error in JSON body: vectors: data did not match any variant of untagged enum VectorsConfig")
            collections[name] = {"size": vec["size"], "distance": vec["distance"], "points": {}, "index": {}}
            save(args)
            return True
        if method == "DELETE":
            collections.pop(name, None)
            save(args)
            return True
    c = need(name)
    if rest == ["index"] and method == "PUT":
        if body.get("field_schema") not in ("keyword", "integer", "float", "bool", "text", "uuid", "datetime"):
            raise Error(400, "Format error in JSON body: field_schema")
        c["index"][body["field_name"]] = body["field_schema"]
        save(args)
        return completed()
    if rest == ["points"] and method == "PUT":
        pts = body.get("points")
        if not isinstance(pts, list):
            raise Error(400, "Format error in JSON body: missing field `points`")
        for p in pts:
            if not isinstance(p.get("id"), int) or p["id"] < 0:
                raise Error(400, "Format error in JSON body: data did not match any variant of untagged enum ExtendedPointId")
            check_vector(c, p.get("vector"))
        for p in pts:
            v = p["vector"]
            if c["distance"] == "Cosine":
                v = normalize(v)
            old = c["points"].get(p["id"])
            c["points"][p["id"]] = {"vector": v, "payload": p.get("payload") or {},
                                    "version": (old["version"] + 1) if old else 0}
        save(args)
        return completed()
    if rest == ["points", "query"] and method == "POST":
        q = body.get("query")
        check_vector(c, q)
        q = normalize(q)
        flt, limit = body.get("filter"), body.get("limit", 10)
        hits = []
        for pid, p in c["points"].items():
            try:
                ok = filter_ok(flt, pid, p["payload"])
            except (ValueError, KeyError, TypeError):
                raise Error(400, "Format error in JSON body: filter")
            if ok:
                hits.append((sum(a * b for a, b in zip(q, p["vector"])), pid, p))
        hits.sort(key=lambda h: (-h[0], h[1]))
        out = []
        for score, pid, p in hits[:limit]:
            item = {"id": pid, "version": p["version"], "score": score}
            if body.get("with_payload"):
                item["payload"] = p["payload"]
            out.append(item)
        return {"points": out}
    if rest == ["points", "delete"] and method == "POST":
        if "points" in body:
            gone = [i for i in body["points"] if i in c["points"]]
        else:
            gone = [pid for pid, p in c["points"].items() if filter_ok(body.get("filter"), pid, p["payload"])]
        for pid in gone:
            del c["points"][pid]
        save(args)
        return completed()
    if rest == ["points", "scroll"] and method == "POST":
        flt = (body or {}).get("filter")
        pts = [{"id": pid, "payload": p["payload"], "vector": p["vector"]}
               for pid, p in sorted(c["points"].items()) if filter_ok(flt, pid, p["payload"])]
        return {"points": pts, "next_page_offset": None}
    raise Error(404, "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--state")
    ap.add_argument("--faults")
    ap.add_argument("--api-key")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    load(args)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # headers and body are two writes: without this, Nagle holds the
            # body for the client's delayed ACK (40 ms a request)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *a):
            pass

        def reply(self, status, obj=None, text=None):
            data = (json.dumps(obj) if obj is not None else text or "").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if obj is not None else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            t0 = time.time()
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            u = urlsplit(self.path)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = "<not json>"
            with lock:
                with open(args.log, "a") as f:
                    f.write(json.dumps({"t": t0, "method": self.command, "path": u.path, "query": u.query,
                                        "headers": dict(self.headers), "body": body}) + "\n")
            fault = {}
            if args.faults and os.path.exists(args.faults):
                with open(args.faults) as f:
                    fault = json.loads(f.read() or "{}")
            if fault.get("hang"):
                time.sleep(fault["hang"])
                self.close_connection = True
                return
            if fault.get("status"):
                return self.reply(fault["status"], {"status": {"error": "Service Unavailable: scripted fault"},
                                                    "time": 0.0})
            if args.api_key:
                key = self.headers.get("api-key")
                if key is None:
                    return self.reply(401, text="Must provide an API key or an Authorization bearer token")
                if key != args.api_key:
                    return self.reply(403, text="Invalid API key or JWT")
            if body == "<not json>":
                return self.reply(400, {"status": {"error": "Format error in JSON body: expected value"},
                                        "time": time.time() - t0})
            try:
                with lock:
                    result = route(args, self.command, [p for p in u.path.split("/") if p], body or {})
                self.reply(200, {"result": result, "status": "ok", "time": time.time() - t0})
            except Error as e:
                if e.status == 404 and not e.text:
                    return self.reply(404, text="")
                self.reply(e.status, {"status": {"error": e.text}, "time": time.time() - t0})

        do_GET = do_PUT = do_POST = do_DELETE = handle_any

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), H)
    print("PORT", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
