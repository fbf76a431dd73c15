"""The engine stand-in (testbed/standin) run as local processes, laid out exactly as in its image.

Real here: the argv checks use the CLI schemas recorded from the real SGLang 0.5.23 / vLLM 0.33.0 packages
(tests/unit/fixtures/engine_cli) through engine_cli.validate_argv; the rendezvous is real TCP between
separate processes; the HTTP API is really served. Simulated: the model execution (there is no engine and no
GPU here); the answers say they come from the stand-in.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from render_helpers import COLLECTIONS, ensure_collection_link
from standin_support import free_port, http, image_root, make_model

KEY = "sk-standin-test"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return image_root(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(str(tmp_path_factory.mktemp("model") / "tiny"))


def start(env, argv, extra_env=None):
    merged = dict(env, **(extra_env or {}))
    return subprocess.Popen(
        argv, env=merged, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def sglang(model, port, *extra):
    return [sys.executable, "-m", "sglang.launch_server", "--model-path", model, "--served-model-name", "tiny",
            "--host", "127.0.0.1", "--port", str(port), "--tp-size", "4", *extra]  # fmt: skip


def group(model, http_port, dist_port, rank, nnodes=2, timeout=30, *extra):
    return sglang(model, http_port, "--dist-init-addr", "127.0.0.1:%d" % dist_port, "--nnodes", str(nnodes),
                  "--node-rank", str(rank), "--dist-timeout", str(timeout), *extra)  # fmt: skip


def vllm_bin(env):
    """The image's `vllm` console script (the stand-in's entry point under vLLM's name)."""
    return os.path.join(env["PYTHONPATH"].replace("/usr/local/lib/python3.11/dist-packages", ""), "usr/local/bin/vllm")


def wait_health(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if http("http://127.0.0.1:%d/health" % port, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("no healthy /health on %d" % port)


def finish(proc, timeout=20):
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
        pytest.fail("still running after %ss:\n%s" % (timeout, out))
    return proc.returncode, out


def stop(*procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sglang_group_forms_serves_with_key_and_leader_exits_when_worker_dies(env, model, tmp_path):
    config = tmp_path / "key.yaml"
    config.write_text('api_key: "%s"\n' % KEY)  # what serving.api_key_script writes on /dev/shm
    port, dist = free_port(), free_port()
    leader = start(env, group(model, port, dist, 0, 2, 30, "--config", str(config)))
    try:
        time.sleep(1)
        # the leader alone is no group: it answers, but unhealthy, with the reason
        status, body = http("http://127.0.0.1:%d/health" % port)
        assert status == 503 and "waiting for 2 ranks" in body
        worker = start(env, group(model, free_port(), dist, 1, 2, 30))
        wait_health(port, leader)
        base = "http://127.0.0.1:%d" % port
        assert http(base + "/v1/models")[0] == 401
        status, models = http(base + "/v1/models", key=KEY)
        assert status == 200 and models["data"][0]["id"] == "tiny"
        assert models["data"][0]["owned_by"] == "llmops-standin"
        request = {"model": "tiny", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 64}
        assert http(base + "/v1/chat/completions", request)[0] == 401
        assert http(base + "/v1/chat/completions", request, key="wrong")[0] == 401
        status, answer = http(base + "/v1/chat/completions", request, key=KEY)
        assert status == 200, answer
        assert answer["system_fingerprint"].startswith("llmops-engine-standin sglang-0.5.23")
        assert "not a model" in answer["choices"][0]["message"]["content"]
        assert "hello there" in answer["choices"][0]["message"]["content"]
        status, text = http(base + "/v1/completions", {"model": "tiny", "prompt": "abc"}, key=KEY)
        assert status == 200 and text["object"] == "text_completion"
        # streaming: SSE chunks, then [DONE]
        status, stream = http(base + "/v1/chat/completions", dict(request, stream=True), key=KEY)
        assert status == 200
        events = [line[6:] for line in stream.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and len(events) > 3
        assert '"chat.completion.chunk"' in events[0]
        # SGLang leaves /metrics open; names are SGLang's
        status, metrics = http(base + "/metrics")
        assert status == 200
        for name in ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage"):
            assert name + '{model_name="tiny"}' in metrics
        # a lost peer: the leader exits non-zero, as a real engine does when its NCCL peer dies
        started = time.monotonic()
        worker.kill()
        code, out = finish(leader)
        assert code == 1
        assert "lost rank 1" in out, out
        assert time.monotonic() - started < 10
    finally:
        stop(leader)
        stop(worker)


def _gauge(metrics, name):
    return float(next(line for line in metrics.splitlines() if line.startswith(name + "{")).rsplit(" ", 1)[1])


@pytest.mark.parametrize(
    "engine, cap_flag, running, queue",
    [
        ("sglang", "--max-running-requests", "sglang:num_running_reqs", "sglang:num_queue_reqs"),
        ("vllm", "--max-num-seqs", "vllm:num_requests_running", "vllm:num_requests_waiting"),
    ],
)
def test_requests_over_the_engine_cap_wait_in_its_queue_gauge(env, model, engine, cap_flag, running, queue):
    """The engine's own cap on requests in flight holds: 4 requests of 5 tokens at 0.3 s per token (the test bed's
    LLMOPS_STANDIN_TOKEN_SECONDS) under a cap of 1 run one after another, and the queue gauge the autoscaler
    reads counts the waiting ones, then drops to 0."""
    port = free_port()
    if engine == "sglang":
        argv = sglang(model, port, cap_flag, "1")
    else:
        argv = [sys.executable, vllm_bin(env), "serve", model, "--served-model-name", "tiny", "--host", "127.0.0.1",
                "--port", str(port), cap_flag, "1"]  # fmt: skip
    proc = start(env, argv, {"LLMOPS_STANDIN_TOKEN_SECONDS": "0.3"})
    try:
        wait_health(port, proc)
        base = "http://127.0.0.1:%d" % port
        request = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        results = []
        started = time.monotonic()

        def ask():
            results.append(http(base + "/v1/chat/completions", request, timeout=30))

        threads = [threading.Thread(target=target) for target in [ask] * 4]
        for thread in threads:
            thread.start()
        time.sleep(0.8)
        metrics = http(base + "/metrics")[1]
        assert _gauge(metrics, running) == 1, metrics
        assert _gauge(metrics, queue) == 3, metrics
        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - started
        assert [result[0] for result in results] == [200] * 4, results
        # one at a time: 4 x 5 tokens x 0.3 s
        assert 5.5 <= elapsed < 15, elapsed
        metrics = http(base + "/metrics")[1]
        assert _gauge(metrics, running) == 0 and _gauge(metrics, queue) == 0, metrics
    finally:
        stop(proc)


def test_worker_exits_when_the_leader_goes_away_and_sigterm_is_clean(env, model):
    port, dist = free_port(), free_port()
    leader = start(env, group(model, port, dist, 0))
    worker = start(env, group(model, free_port(), dist, 1))
    try:
        wait_health(port, leader)
        leader.send_signal(signal.SIGTERM)
        code, out = finish(leader)
        assert code == 0 and "SIGTERM: shutting down" in out
        code, out = finish(worker)
        assert code == 1 and "lost the leader" in out, out
    finally:
        stop(leader, worker)


def test_wrong_dist_init_port_never_forms(env, model):
    port, dist, wrong = free_port(), free_port(), free_port()
    leader = start(env, group(model, port, dist, 0, 2, 4))
    worker = start(env, group(model, free_port(), wrong, 1, 2, 4))
    try:
        time.sleep(1.5)
        assert http("http://127.0.0.1:%d/health" % port)[0] == 503
        code, out = finish(leader)
        assert code == 1
        assert "did not form within --dist-timeout 4s" in out and "never heard from rank(s) [1]" in out, out
        code, out = finish(worker)
        assert code == 1 and "could not join the leader at 127.0.0.1:%d" % wrong in out, out
    finally:
        stop(leader, worker)


def test_duplicate_rank_never_forms(env, model):
    port, dist = free_port(), free_port()
    leader = start(env, group(model, port, dist, 0, 3, 5))
    first = start(env, group(model, free_port(), dist, 1, 3, 5))
    try:
        time.sleep(1.5)
        second = start(env, group(model, free_port(), dist, 1, 3, 5))
        code, out = finish(second)
        assert code == 1 and "rank 1 registered twice" in out, out
        code, out = finish(leader)
        assert code == 1 and "never heard from rank(s) [2]" in out, out
    finally:
        stop(leader, first)


def test_out_of_range_rank_is_refused(env, model):
    code, out = finish(start(env, group(model, free_port(), free_port(), 2, 2, 3)))
    assert code == 1 and "--node-rank 2 is outside 0..1" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--no-such-flag"], "sglang 0.5.23: unknown flag --no-such-flag"),
        (["--tp-size", "four"], "--tp-size takes an integer"),
        (["--dtype", "float128"], "--dtype 'float128' is not one of its choices"),
    ],
)
def test_flags_the_version_refuses(env, model, extra, message):
    code, out = finish(start(env, sglang(model, free_port(), *extra)))
    assert code == 2
    assert message in out and "usage: launch_server.py" in out


def test_unexpanded_variable_is_refused(env, model):
    argv = sglang(model, free_port(), "--node-rank", "$(LLMOPS_WORKER_INDEX)")
    code, out = finish(start(env, argv, {"NCCL_SOCKET_IFNAME": "$(POD_IFACE)"}))
    assert code == 2
    assert "still holds $(LLMOPS_WORKER_INDEX)" in out and "env NCCL_SOCKET_IFNAME still holds $(POD_IFACE)" in out


def test_incomplete_model_is_refused(env, tmp_path):
    broken = make_model(str(tmp_path / "broken"), shards=3)
    os.remove(os.path.join(broken, "model-00002-of-00003.safetensors"))
    code, out = finish(start(env, sglang(broken, free_port())))
    assert code == 1 and "1 of 3 shards missing (model-00002-of-00003.safetensors)" in out
    code, out = finish(start(env, sglang(str(tmp_path / "absent"), free_port())))
    assert code == 1 and "is not a folder" in out


def test_vllm_serve_key_from_env_v1_only(env, model, tmp_path):
    port = free_port()
    argv = [sys.executable, vllm_bin(env), "serve", model, "--served-model-name", "tiny", "--host", "127.0.0.1",
            "--port", str(port), "--tensor-parallel-size", "2"]  # fmt: skip
    proc = start(env, argv, {"VLLM_API_KEY": KEY})
    try:
        wait_health(port, proc)
        base = "http://127.0.0.1:%d" % port
        assert http(base + "/v1/models")[0] == 401
        assert http(base + "/v1/models", key=KEY)[0] == 200
        status, metrics = http(base + "/metrics")
        assert status == 200 and 'vllm:num_requests_running{model_name="tiny"}' in metrics
        assert "vllm:gpu_cache_usage_perc" in metrics
        request = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
        status, answer = http(base + "/v1/chat/completions", request, key=KEY)
        assert status == 200 and answer["system_fingerprint"].startswith("llmops-engine-standin vllm-0.33.0")
        assert http(base + "/v1/chat/completions", dict(request, model="other"), key=KEY)[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert finish(proc)[0] == 0
    # vLLM 0.33.0 dropped --swap-space (engine_cli.RENAMES): refused as by its parser
    code, out = finish(start(env, argv + ["--swap-space", "4"]))
    assert code == 2 and "vllm 0.33.0: unknown flag --swap-space" in out


def test_vllm_data_parallel_nodes_rendezvous_at_the_rpc_address(env, model):
    """serving.vllm_dp_script's two nodes: the API node (no start rank: vLLM's internal load balancing) and a
    --headless one (start rank 1); a start rank on the API node is refused as vLLM's group refuses it."""
    vllm = os.path.join(env["PYTHONPATH"].replace("/usr/local/lib/python3.11/dist-packages", ""), "usr/local/bin/vllm")
    port, rpc = free_port(), free_port()
    common = [sys.executable, vllm, "serve", model, "--served-model-name", "tiny", "--host", "127.0.0.1",
              "--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-address", "127.0.0.1",
              "--data-parallel-rpc-port", str(rpc)]  # fmt: skip
    code, out = finish(start(env, common + ["--port", str(free_port()), "--data-parallel-start-rank", "0"]))
    assert code == 1 and "must not use --headless in external or hybrid dp lb mode" in out
    api = start(env, common + ["--port", str(port)])
    headless = start(env, common + ["--port", str(free_port()), "--headless", "--data-parallel-start-rank", "1"])
    try:
        wait_health(port, api)
        status, answer = http("http://127.0.0.1:%d/v1/completions" % port, {"model": "tiny", "prompt": "x"})
        assert status == 200 and "over 2 node(s)" in answer["choices"][0]["text"]
        headless.kill()
        code, out = finish(api)
        assert code == 1 and "lost rank 1" in out
    finally:
        stop(api, headless)


def test_vllm_ray_scripts_of_our_builder_run_and_the_leader_dies_with_a_ray_node(env, model, tmp_path):
    """serving.ray_leader_script / ray_worker_script, exactly as rendered, with the stand-in `ray` (a head that
    counts joined nodes; not Ray) and `vllm serve --distributed-executor-backend ray`."""
    ensure_collection_link()
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.llmops.inference.plugins.module_utils import serving

    site = env["PYTHONPATH"]
    bindir = os.path.join(site.replace("/usr/local/lib/python3.11/dist-packages", ""), "usr/local/bin")
    port, ray_port = free_port(), free_port()
    argv = ["vllm", "serve", model, "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
            "--tensor-parallel-size", "4", "--distributed-executor-backend", "ray"]  # fmt: skip
    config = {"ray_port": ray_port}
    leader_script = serving.ray_leader_script(config, argv).replace("sleep 5", "sleep 1")
    worker_script = serving.ray_worker_script(config).replace("sleep 5", "sleep 1")
    python = os.path.dirname(sys.executable)
    base = dict(env, PATH="%s:%s:/usr/bin:/bin" % (bindir, python), LWS_GROUP_SIZE="2")
    base["LWS_LEADER_ADDRESS"] = "127.0.0.1"
    # one Ray state folder per "pod": they are separate containers in the cluster
    leader = start(base, ["/bin/bash", "-c", leader_script], {"LLMOPS_STANDIN_RAY_DIR": str(tmp_path / "head")})
    worker = start(base, ["/bin/bash", "-c", worker_script], {"LLMOPS_STANDIN_RAY_DIR": str(tmp_path / "node")})
    try:
        wait_health(port, leader, timeout=40)
        status, answer = http("http://127.0.0.1:%d/v1/chat/completions" % port,
                              {"model": "tiny", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
        assert status == 200 and "over 2 node(s), tp 4" in answer["choices"][0]["message"]["content"]
        os.killpg(worker.pid, signal.SIGKILL)  # the node's script and its `ray start --block`
        code, out = finish(leader, timeout=30)
        assert code == 1 and "a Ray node died (1 of 2 alive)" in out, out
    finally:
        stop(worker, leader)
        for folder in ("head", "node"):
            ray = [sys.executable, os.path.join(bindir, "ray"), "stop"]
            subprocess.run(ray, env=dict(env, LLMOPS_STANDIN_RAY_DIR=str(tmp_path / folder)), check=False)


def test_image_files_lists_folders_without_caches_and_refuses_a_missing_path():
    """image_build.py's `files`: what the engine-standin image copies from the repository."""
    from standin_support import image_build

    builder = image_build()
    files = builder.repo_files({"testbed/standin": "/opt/standin", "plugins/module_utils/errors.py": "/e.py"})
    targets = sorted(files.values())
    assert "/opt/standin/sglang/launch_server.py" in targets and "/e.py" in targets
    assert not [t for t in targets if "__pycache__" in t or t.endswith(".pyc")]
    with pytest.raises(SystemExit, match="not in the repository"):
        builder.repo_files({"testbed/no-such-folder": "/x"})
