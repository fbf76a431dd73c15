"""The five tracebacks of issue 13, each now a clean ``failed`` message.

openai_check talks to a loopback HTTP server that answers the way a misconfigured route does: an HTML page
(an ingress default backend or a login page) where the OpenAI API's JSON was expected, and a completion
whose ``choices`` is empty (seen from proxies that strip the body). The zero-heads config.json is Qwen3-8B's
with num_attention_heads set to 0 (tests/integration/fixtures/preflight/zero-heads).
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.llmops.inference.plugins.modules import hccn_network, openai_check, parallelism_plan

ZERO_HEADS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))),
    "integration",
    "fixtures",
    "preflight",
    "zero-heads",
)


class Handler(BaseHTTPRequestHandler):
    mode = "html"

    def log_message(self, *args):
        pass

    def _send(self, body, kind):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.server.mode == "html":
            self._send(b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html")
        else:
            self._send(json.dumps({"object": "list", "data": [{"id": "deepseek-r1"}]}).encode(), "application/json")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode(), "application/json")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def test_html_where_json_was_expected(server, run):
    server.mode = "html"
    result = run(openai_check.main, {"base_url": "http://127.0.0.1:%d" % server.server_port, "timeout": 5})
    assert result["failed"] and "did not answer JSON" in result["msg"] and "Welcome to nginx" in result["msg"]


def test_empty_choices(server, run):
    server.mode = "json"
    result = run(openai_check.main, {"base_url": "http://127.0.0.1:%d/v1" % server.server_port, "timeout": 5})
    assert result["failed"] and "answered no choice with a message" in result["msg"]


def test_base_url_not_a_url(run):
    result = run(openai_check.main, {"base_url": "not-a-url"})
    assert result["failed"] and "base_url='not-a-url' is not an http(s) URL" in result["msg"]


def test_plan_host_given_as_a_string(run, tmp_path):
    args = {"host": "npu-0", "plan": {"npu-0": "10.0.0.10"}, "hccn_conf_path": str(tmp_path / "hccn.conf")}
    result = run(hccn_network.main, args, check_mode=True)
    assert result["failed"] and "Host npu-0: the plan entry must be a mapping" in result["msg"]


def test_config_with_zero_attention_heads(run):
    result = run(parallelism_plan.main, {"model_path": ZERO_HEADS, "accelerator": "A800-80G", "nodes": 1})
    assert result["failed"] and "non-positive heads" in result["msg"]
