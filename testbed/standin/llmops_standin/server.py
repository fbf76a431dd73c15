"""The OpenAI-compatible HTTP side of the stand-in: /health, /v1/models, /v1/chat/completions (and SSE
streaming), /v1/completions, /metrics in the engine's Prometheus names, the API key enforced as the engine
does. Every answer says it comes from the stand-in, never from the engine."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid

STANDIN = "llmops-engine-standin"

# Paths each engine serves without the API key. SGLang (add_api_key_middleware): /health* and /metrics pass,
# every other path needs "Authorization: Bearer <key>". vLLM (AuthenticationMiddleware): only /v1/* is checked.
UNAUTHENTICATED = {
    "sglang": lambda path: path.startswith("/health") or path.startswith("/metrics"),
    "vllm": lambda path: not path.startswith("/v1"),
}


class State:
    """What the server answers from. ``max_running`` is the engine's own cap on requests in flight (SGLang's
    --max-running-requests, vLLM's --max-num-seqs; None: no cap): a request beyond it waits, counted in the
    engine's queue gauge, as in the engines' schedulers. ``token_seconds`` is the time each generated token
    takes (LLMOPS_STANDIN_TOKEN_SECONDS, test bed only; 0: answers at once), so a load builds a queue."""

    def __init__(self, engine, version, served_name, model_path, api_keys, nnodes, tp, max_running=None,
                 token_seconds=0.0):  # fmt: skip
        self.engine, self.version, self.served_name = engine, version, served_name
        self.model_path, self.api_keys, self.nnodes, self.tp = model_path, list(api_keys), nnodes, tp
        self.max_running = int(max_running) if max_running else None
        self.token_seconds = float(token_seconds or 0)
        self.ready = threading.Event()
        self.status = "starting"
        self.lock = threading.Condition()
        self.running = 0
        self.queued = 0
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.created = int(time.time())

    def admit(self):
        """Wait for a free slot under max_running (counted as queued meanwhile), then take it."""
        with self.lock:
            if self.max_running is not None and self.running >= self.max_running:
                self.queued += 1
                self.lock.wait_for(lambda: self.running < self.max_running)
                self.queued -= 1
            self.running += 1

    def release(self, usage):
        with self.lock:
            self.running -= 1
            self.requests += 1
            self.prompt_tokens += usage["prompt_tokens"]
            self.generation_tokens += usage["completion_tokens"]
            self.lock.notify()

    @property
    def fingerprint(self):
        return "%s %s-%s (stand-in, not the engine)" % (STANDIN, self.engine, self.version)

    def metrics(self):
        labels = '{model_name="%s"}' % self.served_name
        if self.engine == "sglang":
            rows = [
                ("sglang:num_running_reqs", "gauge", self.running),
                ("sglang:num_queue_reqs", "gauge", self.queued),
                ("sglang:token_usage", "gauge", 0.0),
                ("sglang:gen_throughput", "gauge", 0.0),
                ("sglang:prompt_tokens_total", "counter", self.prompt_tokens),
                ("sglang:generation_tokens_total", "counter", self.generation_tokens),
                ("sglang:num_requests_total", "counter", self.requests),
            ]
        else:
            rows = [
                ("vllm:num_requests_running", "gauge", self.running),
                ("vllm:num_requests_waiting", "gauge", self.queued),
                ("vllm:gpu_cache_usage_perc", "gauge", 0.0),
                ("vllm:kv_cache_usage_perc", "gauge", 0.0),
                ("vllm:prompt_tokens_total", "counter", self.prompt_tokens),
                ("vllm:generation_tokens_total", "counter", self.generation_tokens),
                ("vllm:request_success_total", "counter", self.requests),
            ]
        lines = ["# llmops-engine-standin: metric names of %s %s, values of a stand-in" % (self.engine, self.version)]
        for name, kind, value in rows:
            lines += [
                "# HELP %s %s" % (name, STANDIN),
                "# TYPE %s %s" % (name, kind),
                "%s%s %s" % (name, labels, value),
            ]
        return "\n".join(lines) + "\n"


def _answer_text(state, prompt):
    return "[%s, not a model: %s over %d node(s), tp %d] you said: %s" % (
        STANDIN,
        state.engine,
        state.nnodes,
        state.tp,
        " ".join(prompt.split()[:32]),
    )


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = STANDIN
    protocol_version = "HTTP/1.1"
    state = None  # set by serve()

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        if not self.path.startswith("/health") and not self.path.startswith("/metrics"):
            print("[%s] %s %s" % (STANDIN, self.address_string(), format % args), flush=True)

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _text(self, status, text, kind="text/plain; charset=utf-8"):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _allowed(self):
        path = self.path.split("?", 1)[0]
        keys = self.state.api_keys
        if not keys or self.command == "OPTIONS" or UNAUTHENTICATED[self.state.engine](path):
            return True
        if self.headers.get("Authorization") in ["Bearer " + key for key in keys]:
            return True
        self._json(401, {"error": "Unauthorized"})
        return False

    def do_GET(self):  # noqa: N802 (BaseHTTPRequestHandler's naming)
        path = self.path.split("?", 1)[0]
        if not self._allowed():
            return
        if path in ("/health", "/health_generate", "/ping"):
            if self.state.ready.is_set():
                self._text(200, "")
            else:
                self._text(503, "%s: not ready: %s\n" % (STANDIN, self.state.status))
        elif path == "/metrics":
            self._text(200, self.state.metrics(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": self.state.served_name,
                            "object": "model",
                            "created": self.state.created,
                            "owned_by": "llmops-standin",
                            "root": self.state.model_path,
                        }
                    ],
                },
            )
        elif path == "/version":
            self._json(200, {"version": "%s (%s)" % (self.state.version, self.state.fingerprint)})
        else:
            self._json(404, {"error": "%s: no route %s" % (STANDIN, path)})

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None

    def do_POST(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        if not self._allowed():
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._json(404, {"error": "%s: no route %s" % (STANDIN, path)})
            return
        if not self.state.ready.is_set():
            self._json(503, {"error": "%s: not ready: %s" % (STANDIN, self.state.status)})
            return
        body = self._body()
        if not isinstance(body, dict):
            self._json(400, {"object": "error", "message": "request body is not JSON", "code": 400})
            return
        if body.get("model", self.state.served_name) != self.state.served_name:
            self._json(
                404,
                {
                    "object": "error",
                    "message": "The model `%s` does not exist (served: %s)." % (body["model"], self.state.served_name),
                    "code": 404,
                },
            )
            return
        chat = path == "/v1/chat/completions"
        if chat:
            messages = body.get("messages") or []
            prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            prompt = str(body.get("prompt", ""))
        text = _answer_text(self.state, prompt)
        words = text.split(" ")
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or len(words))
        words = words[: max(1, limit)]
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(words),
            "total_tokens": len(prompt.split()) + len(words),
        }
        self.state.admit()
        try:
            if body.get("stream"):
                self._stream(chat, words, usage)
            else:
                time.sleep(self.state.token_seconds * len(words))
                self._json(200, self._completion(chat, " ".join(words), usage))
        finally:
            self.state.release(usage)

    def _completion(self, chat, text, usage):
        common = {
            "id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex,
            "created": int(time.time()),
            "model": self.state.served_name,
            "system_fingerprint": self.state.fingerprint,
            "usage": usage,
        }
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return dict(common, object="chat.completion", choices=[choice])
        return dict(common, object="text_completion", choices=[{"index": 0, "text": text, "finish_reason": "stop"}])

    def _stream(self, chat, words, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        kind = "chat.completion.chunk" if chat else "text_completion"
        for position, word in enumerate(words):
            time.sleep(self.state.token_seconds)
            piece = word if position == 0 else " " + word
            if chat:
                delta = {"content": piece}
                if position == 0:
                    delta["role"] = "assistant"
                choice = {"index": 0, "delta": delta, "finish_reason": None}
            else:
                choice = {"index": 0, "text": piece, "finish_reason": None}
            self._event(ident, kind, [choice])
        last = (
            {"index": 0, "delta": {}, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": "", "finish_reason": "stop"}
        )
        self._event(ident, kind, [last], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, ident, kind, choices, usage=None):
        chunk = {
            "id": ident,
            "object": kind,
            "created": int(time.time()),
            "model": self.state.served_name,
            "system_fingerprint": self.state.fingerprint,
            "choices": choices,
        }
        if usage:
            chunk["usage"] = usage
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.flush()


def serve(state, host, port):
    """Start the HTTP server in a thread; returns the server (shutdown() stops it)."""
    handler = type("StandinHandler", (Handler,), {"state": state})
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    httpd = http.server.ThreadingHTTPServer((host, int(port)), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
