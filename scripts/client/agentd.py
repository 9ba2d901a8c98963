"""agentd's HTTP API for the seed's users: the BackgroundAgentManager
methods by their names, and EventRouter.stream(session_id=...).

Standard library only.  By default it talks to the unix socket
$AGENTD_HTTP_SOCKET (else /var/lib/agentd/http.sock); give url=
"http://HOST:PORT" for a TCP listener, with token= (or $AGENTD_HTTP_TOKEN)
as its bearer token.  The seed's examples run with the import changed:

    from agentd import BackgroundAgentManager, EventRouter, MemoryRouter
    manager = BackgroundAgentManager(memory_store=MemoryRouter("database"),
                                     event_router=EventRouter("database"))
    manager.create_agent({"agent_id": "file_monitor", ...})

Stores are agentd's own (its configuration chooses them): the routers'
store types are accepted and not used.  An error is an AgentdError with
the API's status, code, message, pointer (where in the body) and, for a
config refused, every error in errors.  stream() yields events as objects
(event.type, event.agent_name, event.payload.error ...) for `for` and
`async for` alike, and when the connection drops it connects again with
Last-Event-ID: nothing lost, nothing twice.
"""
import asyncio
import http.client
import json
import os
import socket
import time
import urllib.parse

__all__ = ["AgentdError", "BackgroundAgentManager", "EventRouter", "MemoryRouter"]


class AgentdError(Exception):
    def __init__(self, status, code, message, pointer=None, errors=None):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status, self.code, self.message = status, code, message
        self.pointer, self.errors = pointer, errors or []


class Obj(dict):
    """A JSON object whose keys are attributes too (event.payload.error)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            return None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("agentd", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class _Client:
    def __init__(self, url=None, token=None, socket_path=None, timeout=30.0):
        self.url = urllib.parse.urlsplit(url) if url else None
        self.token = token or os.environ.get("AGENTD_HTTP_TOKEN")
        self.socket_path = socket_path or os.environ.get("AGENTD_HTTP_SOCKET",
                                                         "/var/lib/agentd/http.sock")
        self.timeout = timeout

    def _connect(self, timeout):
        if self.url is None:
            return _UnixConnection(self.socket_path, timeout)
        return http.client.HTTPConnection(self.url.hostname, self.url.port or 80,
                                          timeout=timeout)

    def _headers(self, extra=None):
        h = {"Accept": "application/json"}
        if self.url is not None and self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def request(self, method, path, body=None, headers=None):
        conn = self._connect(self.timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            h = self._headers(headers)
            if data is not None:
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            text = resp.read()
        finally:
            conn.close()
        value = json.loads(text, object_hook=Obj) if text.strip() else None
        if resp.status >= 400:
            e = (value or {}).get("error") or {}
            raise AgentdError(resp.status, e.get("code"), e.get("message"),
                              e.get("pointer"), e.get("errors"))
        return value


def _agent_path(agent_id, tail=""):
    return "/v1/agents/" + urllib.parse.quote(agent_id, safe="") + tail


class BackgroundAgentManager(_Client):
    """The seed's manager, as agentd serves it."""

    def __init__(self, memory_store=None, event_router=None, **connection):
        super().__init__(**connection)

    def create_agent(self, config):
        return self.request("POST", "/v1/agents", config)

    def get_agent_status(self, agent_id):
        return self.request("GET", _agent_path(agent_id))

    def pause_agent(self, agent_id):
        return self.request("POST", _agent_path(agent_id, "/pause"))

    def resume_agent(self, agent_id):
        return self.request("POST", _agent_path(agent_id, "/resume"))

    def run_agent(self, agent_id, **kwargs):
        return self.request("POST", _agent_path(agent_id, "/run"), kwargs or None)

    def update_agent_config(self, agent_id, config, etag=None):
        """config: the keys to change (a JSON merge patch; None removes a
        key).  etag: the one read, so a change made since is not lost
        (AgentdError 412)."""
        headers = {"If-Match": '"%s"' % etag} if etag else None
        return self.request("PATCH", _agent_path(agent_id), config, headers)

    def delete_agent(self, agent_id, etag=None):
        headers = {"If-Match": '"%s"' % etag} if etag else None
        return self.request("DELETE", _agent_path(agent_id), None, headers)

    def get_manager_status(self):
        return self.request("GET", "/v1/status")

    def list_agents(self):
        return self.request("GET", "/v1/agents")


class MemoryRouter:
    """The seed's memory router: agentd's configuration chooses the store."""

    def __init__(self, memory_store_type=None, **ignored):
        self.memory_store_type = memory_store_type


class EventRouter(_Client):
    """The seed's event router: stream() follows agentd's event log."""

    def __init__(self, event_store_type=None, **connection):
        super().__init__(**connection)
        self.event_store_type = event_store_type

    def stream(self, session_id=None, agent=None, type=None, after=None, retry_delay=0.5):
        return _Stream(self, {"session_id": session_id, "agent": agent, "type": type,
                              "after": after}, retry_delay)


class _Stream:
    """Server-Sent Events, resumed with Last-Event-ID when the connection
    drops (agentd restarting included)."""

    def __init__(self, client, params, retry_delay):
        self.client, self.retry_delay = client, retry_delay
        self.params = {k: v for k, v in params.items() if v is not None}
        self.last_id = None
        self.conn = self.resp = None

    def _open(self):
        path = "/v1/events/stream"
        if self.params:
            path += "?" + urllib.parse.urlencode(self.params)
        extra = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            extra["Last-Event-ID"] = str(self.last_id)
        self.conn = self.client._connect(None)
        self.conn.request("GET", path, headers=self.client._headers(extra))
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            e = (json.loads(self.resp.read() or b"{}").get("error") or {})
            self.close()
            raise AgentdError(self.resp.status, e.get("code"), e.get("message"),
                              e.get("pointer"))

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = self.resp = None

    def _message(self):
        """The next event of the open stream, or None when it ended."""
        ident, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    return ident, "\n".join(data)
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                ident = value
            elif field == "data":
                data.append(value)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                if self.resp is None:
                    self._open()
                got = self._message()
            except (OSError, http.client.HTTPException):
                got = None
            if got is not None:
                ident, data = got
                if ident is not None:
                    self.last_id = int(ident)
                return json.loads(data, object_hook=Obj)
            self.close()
            time.sleep(self.retry_delay)

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await asyncio.to_thread(self.__next__)
