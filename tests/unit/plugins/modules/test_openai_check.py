"""openai_check against a loopback HTTP server speaking the OpenAI wire format.

No engine can run here (no GPU), so the server below answers like vLLM/SGLang do: /v1/models
({"data": [{"id": ...}]}), a chat completion, and a streamed one as server-sent events
("data: {...}\\n\\n" chunks with choices[0].delta.content, a usage chunk, then "data: [DONE]").
It checks the Bearer key, so a wrong key must fail.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.llmops.inference.plugins.modules import openai_check

KEY = "sk-loopback-test"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _authorized(self):
        if self.headers.get("Authorization") != "Bearer " + KEY:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": "invalid api key"}')
            return False
        return True

    def _json(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self._authorized() and self.path == "/v1/models":
            self._json({"object": "list", "data": [{"id": "qwen3-0.6b", "object": "model"}]})

    def do_POST(self):
        if not self._authorized():
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not request.get("stream"):
            self._json(
                {
                    "choices": [{"message": {"role": "assistant", "content": "Hello there."}}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 3},
                }
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in ("Hello", " there", "."):
            self.wfile.write(("data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": word}}]})).encode())
            self.wfile.flush()
        self.wfile.write(("data: %s\n\n" % json.dumps({"choices": [], "usage": {"completion_tokens": 3}})).encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        openai_check.main()
    return json.loads(capsys.readouterr().out)


def test_smoke_and_load_test(server, capsys):
    result = run(
        capsys, base_url=server, api_key=KEY, model="qwen3-0.6b", load_test_requests=6, load_test_concurrency=3
    )
    assert result.get("failed") is not True, result
    assert result["models"] == ["qwen3-0.6b"] and result["answer"] == "Hello there."
    load = result["load_test"]
    assert load["succeeded"] == 6 and load["failed"] == 0 and load["output_tokens"] == 18
    assert load["ttft_p50_s"] is not None and load["output_tokens_per_s"] > 0
    assert KEY not in json.dumps(result)


def test_wrong_key_is_reported(server, capsys):
    result = run(capsys, base_url=server + "/v1", api_key="sk-wrong")
    assert result["failed"] is True and "401" in result["msg"] and "API key was refused" in result["msg"]
    assert "sk-wrong" not in json.dumps(result)


def test_unknown_model_is_reported(server, capsys):
    result = run(capsys, base_url=server, api_key=KEY, model="deepseek-r1")
    assert result["failed"] is True and "qwen3-0.6b" in result["msg"]


def test_unreachable_endpoint(capsys):
    result = run(capsys, base_url="http://127.0.0.1:9", api_key=KEY, timeout=2)
    assert result["failed"] is True and "cannot reach" in result["msg"]
