"""A small OpenAI-compatible model server per AI Machine, on the instance's loopback address.

What the hosted service's private AI Machines run is llama.cpp's `llama-server` on port 8080
(upstream x402-compute references/ai-machines.md). This stands in for it, for clients to talk to:

    auth        `Authorization: Bearer <the instance's api_key>`, else 401 with an OpenAI-style error
                body (`{"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}`)
    GET  /v1/models             `{"object": "list", "data": [{"id": <model_id>, "object": "model", ...}]}`
    POST /v1/chat/completions   `messages` (a non-empty list of {role, content}) required; the reply is
                deterministic: `"<model_id> (sandbox) heard: <the last user message>"`, cut to
                `max_tokens` words when given. `stream: true` answers `text/event-stream`: one
                `chat.completion.chunk` per word, a last chunk with `finish_reason`, then `data: [DONE]`
    bounds      request bodies up to 64 KiB (413), 10 s to send a request (socket timeout), one
                thread per connection, at most 16 at once per instance
    address     the instance's own address (127.0.x.y) on port 8080 when it is free there, else any
                free port on it; the port is what the order's `metadata.ai.port` says

No model runs: the point is the wire format, the bearer key and the lifecycle (`close` on destroy,
expiry and a DigitalOcean resize ends the listener and every connection before it returns).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from .server import listen_loopback

DEFAULT_PORT = 8080
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 16


def reply_text(model_id: str, messages: list, max_tokens: Optional[int]) -> str:
    last = next((m.get("content") for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), "")
    if isinstance(last, list):  # content parts: keep the text ones
        last = " ".join(p.get("text", "") for p in last if isinstance(p, dict))
    words = f"{model_id} (sandbox) heard: {last if isinstance(last, str) else ''}".split()
    if max_tokens is not None:
        words = words[:max_tokens]
    return " ".join(words)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, sock: socket.socket, api_key: str, model_id: str, created: int):
        self.api_key, self.model_id, self.created = api_key, model_id, created
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

    def process_request(self, request, client_address):
        if not self._slots.acquire(timeout=2):
            self.shutdown_request(request)
            return
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def close_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().close_request(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def end_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "llama-server-sandbox"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def log_message(self, *args) -> None:  # quiet, like the rest of the sandbox without --verbose
        pass

    def _send(self, status: int, doc: dict) -> None:
        raw = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._send(status, {"error": {"code": status, "message": message, "type": kind}})

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        want = f"Bearer {self.server.api_key}"
        if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), want.encode()):
            return True
        self._error(401, "Invalid API Key", "authentication_error")
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.split("?")[0].rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_id, "object": "model", "created": self.server.created, "owned_by": "llamacpp"}]})
        else:
            self._error(404, "File Not Found", "not_found_error")

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._error(404, "File Not Found", "not_found_error")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._error(411, "Content-Length required", "invalid_request_error")
            return
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._error(413, f"Request body larger than {MAX_BODY} bytes", "invalid_request_error")
            return
        try:
            body = json.loads(self.rfile.read(int(length)) or b"null")
        except ValueError:
            self._error(400, "Request body is not JSON", "invalid_request_error")
            return
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            self._error(400, "'messages' must be a non-empty list of {role, content}", "invalid_request_error")
            return
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            self._error(400, "'max_tokens' must be a positive integer", "invalid_request_error")
            return
        text = reply_text(self.server.model_id, messages, max_tokens)
        full = len(text.split()) < len(reply_text(self.server.model_id, messages, None).split())
        finish = "length" if full else "stop"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(text.split())
        cid = "chatcmpl-" + hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:24]
        created = int(time.time())
        model = self.server.model_id
        if body.get("stream") is True:
            self._stream(cid, created, model, text, finish)
            return
        self._send(200, {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    def _stream(self, cid: str, created: int, model: str, text: str, finish: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta: dict, reason: Optional[str]) -> None:
            doc = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
            self.wfile.write(b"data: " + json.dumps(doc).encode() + b"\n\n")

        chunk({"role": "assistant", "content": ""}, None)
        for i, word in enumerate(text.split()):
            chunk({"content": (" " if i else "") + word}, None)
        chunk({}, finish)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class LlmServers:
    """Every AI Machine's model server, one thread each, keyed by instance id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[str, tuple[_Server, threading.Thread]] = {}

    def open(self, instance_id: str, ip: str, port: int, *, api_key: str, model_id: str) -> int:
        """Serve `instance_id`'s model on (ip, port), else any free port on ip. Returns the port."""
        self.close(instance_id)
        sock = listen_loopback((ip, port), (ip, 0))
        server = _Server(sock, api_key, model_id, int(time.time()))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=f"sandbox-llm-{instance_id[:8]}", daemon=True)
        thread.start()
        with self._lock:
            self._servers[instance_id] = (server, thread)
        return sock.getsockname()[1]

    def close(self, instance_id: str) -> None:
        with self._lock:
            entry = self._servers.pop(instance_id, None)
        if entry is None:
            return
        server, thread = entry
        server.shutdown()          # stops accepting; returns once serve_forever has
        server.end_connections()   # ends the connections still open (a client mid-request)
        server.server_close()
        thread.join(timeout=5)

    def is_open(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._servers

    def shutdown(self) -> None:
        for iid in list(self._servers):
            self.close(iid)
