"""openai_benchmark and module_utils/benchmark.py against a real loopback HTTP server of our own that streams
server-sent events the way vLLM/SGLang do, with an engine's timing: a request waits for one of SLOTS batch
slots (the engine's queue), its first token comes FIRST_TOKEN_S later, then one token every TOKEN_S. The
measured TTFT/TPOT/throughput are checked against those numbers, so the client's timing is what is tested.
"""

import csv
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.llmops.inference.plugins.module_utils import benchmark, openai_client
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.modules import openai_benchmark

KEY = "sk-bench-loopback"
MODEL = "tiny-engine"
SLOTS = 2
FIRST_TOKEN_S = 0.05
TOKEN_S = 0.01
TOKENS = 10


class EngineLike(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # as uvicorn does: each SSE chunk leaves at once (Nagle + delayed ACK would hold small writes ~40-200 ms)
    disable_nagle_algorithm = True
    slots = threading.BoundedSemaphore(SLOTS)
    fail_every = 0  # answer HTTP 500 on every n-th request when set
    counter = [0]
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self):
        if self.headers.get("Authorization") != "Bearer " + KEY:
            self._send(401, {"error": "invalid api key"})
            return False
        return True

    def do_GET(self):  # noqa: N802
        if self._authorized():
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self):  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._authorized():
            return
        with self.lock:
            self.counter[0] += 1
            number = self.counter[0]
        if self.fail_every and number % self.fail_every == 0:
            self._send(500, {"error": "engine overloaded"})
            return
        assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
        tokens = min(TOKENS, int(request["max_tokens"]))
        with self.slots:  # the engine's batch: a request beyond SLOTS waits in its queue
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            time.sleep(FIRST_TOKEN_S)
            for index in range(tokens):
                if index:
                    time.sleep(TOKEN_S)
                chunk = {"choices": [{"index": 0, "delta": {"content": " tok%d" % index}}]}
                self.wfile.write(("data: %s\n\n" % json.dumps(chunk)).encode())
                self.wfile.flush()
            usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": tokens}}
            self.wfile.write(("data: %s\n\n" % json.dumps(usage)).encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()


@pytest.fixture
def server():
    handler = type("Engine", (EngineLike,), {"counter": [0], "slots": threading.BoundedSemaphore(SLOTS)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.handler = handler
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd):
    return "http://127.0.0.1:%d" % httpd.server_address[1]


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        openai_benchmark.main()
    return json.loads(capsys.readouterr().out)


def test_sweep_measures_the_engine_timing(server):
    endpoint = openai_client.Endpoint(url(server), KEY, timeout=10)
    # a request count per level, not a duration: whole rounds of requests keep the throughput ratios exact
    result = benchmark.sweep(endpoint, MODEL, ["a", "b"], 64, [4, 1, 2], requests_per_level=12, warmup=1)
    one, two, four = result["levels"]
    assert [row["concurrency"] for row in result["levels"]] == [1, 2, 4]
    for row in (one, two, four):
        assert row["failed"] == 0 and row["succeeded"] == 12, row
        assert row["output_tokens"] == TOKENS * row["succeeded"]
    # one request alone: TTFT is the engine's first-token delay, TPOT its token interval
    assert 45 <= one["ttft_ms_p50"] <= 150, one
    assert 9 <= one["tpot_ms_p50"] <= 30, one
    request_ms = FIRST_TOKEN_S * 1000 + (TOKENS - 1) * TOKEN_S * 1000
    assert request_ms <= one["e2e_ms_p50"] <= request_ms + 100, one
    # two slots: two in flight double the throughput; four wait in the queue, so TTFT grows by about a request
    assert two["output_tokens_per_s"] > 1.5 * one["output_tokens_per_s"], (one, two)
    assert four["ttft_ms_p90"] > one["ttft_ms_p90"] + request_ms / 2, (one, four)
    assert four["output_tokens_per_s"] < 1.5 * two["output_tokens_per_s"], (two, four)


def test_module_writes_json_csv_and_svg(server, capsys, tmp_path):
    result = run(
        capsys,
        base_url=url(server) + "/v1",
        api_key=KEY,
        concurrency=[1, 2],
        duration_s=0,
        requests_per_level=4,
        warmup_requests=0,
        output_dir=str(tmp_path / "out"),
        name="tiny",
    )
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["models"] == [MODEL]
    files = result["files"]
    assert files == {kind: str(tmp_path / "out" / ("tiny." + kind)) for kind in ("json", "csv", "svg")}
    with open(files["json"]) as handle:
        saved = json.load(handle)
    assert saved["model"] == MODEL and [row["requests"] for row in saved["levels"]] == [4, 4]
    with open(files["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["concurrency"] for row in rows] == ["1", "2"]
    assert list(rows[0]) == list(benchmark.CSV_COLUMNS)
    assert float(rows[0]["ttft_ms_p50"]) >= 45 and int(rows[1]["output_tokens"]) == 4 * TOKENS
    svg = ElementTree.parse(files["svg"]).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 6  # 2 throughput + 4 latency series, one point per level each
    assert all(len(line.get("points").split()) == 2 for line in lines)
    with open(files["json"]) as handle:
        assert KEY not in json.dumps(result) and KEY not in handle.read()
    assert result["table"][0].startswith("concurrency") and len(result["table"]) == 3


def test_check_mode_sends_no_load(server, capsys, tmp_path):
    result = run(capsys, base_url=url(server), api_key=KEY, output_dir=str(tmp_path / "out"), _ansible_check_mode=True)
    assert result["changed"] is False and "no load sent" in result["msg"]
    assert server.handler.counter[0] == 0 and not (tmp_path / "out").exists()


def test_failed_requests_are_counted_and_fail_when_asked(server, capsys):
    server.handler.fail_every = 3
    args = dict(
        base_url=url(server), api_key=KEY, concurrency=[2], duration_s=0, requests_per_level=6, warmup_requests=0
    )
    tolerant = run(capsys, **args)
    assert tolerant.get("failed") is not True, tolerant
    [row] = tolerant["results"]["levels"]
    assert (row["succeeded"], row["failed"]) == (4, 2)
    assert "HTTP 500" in row["errors"][0]
    strict = run(capsys, fail_on_error=True, **args)
    assert strict["failed"] is True and "2 of 6 requests failed at concurrency 2" in strict["msg"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"concurrency": []}, "at least one level"),
        ({"concurrency": [0]}, "between 1 and 1024"),
        ({"duration_s": 0, "requests_per_level": 0}, "needs a bound"),
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"model": "other"}, "model other is not served"),
        ({"api_key": "sk-wrong"}, "API key was refused"),
        ({"output_dir": "/proc/llmops-cannot-write", "requests_per_level": 1, "concurrency": [1]}, "cannot write"),
    ],
)
def test_bad_input_fails_cleanly(server, capsys, args, message):
    base = dict(base_url=url(server), api_key=KEY, duration_s=0.2, warmup_requests=0)
    base.update(args)
    result = run(capsys, **base)
    assert result["failed"] is True and message in result["msg"], result
    assert "sk-wrong" not in json.dumps(result)


def test_summaries_and_chart_scale_without_a_server():
    outcomes = [{"ttft_s": 0.1 * i, "total_s": 0.1 * i + 0.5, "tokens": 6} for i in range(1, 11)]
    row = benchmark.summarize(8, outcomes, ["boom"], 2.0)
    assert row["ttft_ms_p50"] == 500.0 and row["ttft_ms_p99"] == 1000.0
    assert row["tpot_ms_p50"] == 100.0 and row["requests"] == 11 and row["output_tokens_per_s"] == 30.0
    # one-token answers have no TPOT
    assert benchmark.summarize(1, [{"ttft_s": 0.1, "total_s": 0.1, "tokens": 1}], [], 1.0)["tpot_ms_p50"] is None
    assert [benchmark._nice_max(v) for v in (0, 0.7, 3, 42, 999, 1001)] == [1.0, 1.0, 5.0, 50.0, 1000.0, 2000.0]
    text = benchmark.results_csv({"levels": [row]})
    assert next(csv.DictReader(io.StringIO(text)))["failed"] == "1"
    with pytest.raises(LlmopsError, match="plain file name"):
        benchmark.write_results({"levels": []}, "/tmp", "../escape")
