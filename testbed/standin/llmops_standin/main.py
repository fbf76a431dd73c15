"""Entry points of the engine stand-in: `python3 -m sglang.launch_server ...` and `vllm serve ...` inside the
test bed's engine-standin image run these. They refuse what the engine refuses (the argv checked against
the CLI recorded from the real package of the image's engine version), need every `$(VAR)` expanded and a
complete model folder, form a real TCP rendezvous of --nnodes processes, then serve the OpenAI API as a
stand-in that says what it is (docs/testing.md, "Engine stand-in")."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time

from llmops_standin import checks, ray_cli, rendezvous, server
from llmops_standin.rendezvous import log

DEFAULT_DIST_TIMEOUT = 600


class Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Terminated()


def _refuse(prog, error):
    print("usage: %s [-h] [options]\n%s: %s" % (prog, prog, error), file=sys.stderr, flush=True)
    return error.code


def _first(value):
    return value[0] if isinstance(value, list) else value


def run_group(state, host, port, nnodes, rank, addr, timeout, serves_http, watch=None):
    """Rendezvous, then serve (rank 0 / serves_http) until SIGTERM or a lost peer. Returns the exit code."""
    identity = "%s-%s" % (state.engine, state.version)
    httpd = None
    leader = worker = None
    stop = threading.Event()
    try:
        if serves_http:
            httpd = server.serve(state, host, port)
            log("HTTP on %s:%s: /health answers 503 until the group has formed" % (host, port))
        if nnodes > 1:
            state.status = "waiting for %d ranks at %s" % (nnodes, addr)
            dist_host, dist_port = rendezvous.split_addr(addr)
            if rank == 0:
                leader = rendezvous.Leader(dist_host, dist_port, nnodes, timeout, identity)
                leader.form()
            else:
                worker = rendezvous.Worker(dist_host, dist_port, nnodes, rank, timeout, identity)
                worker.join()
        state.status = "serving"
        state.ready.set()
        if serves_http:
            log("ready: serving %s on %s:%s (%s)" % (state.served_name, host, port, state.fingerprint))
        if leader is not None:
            leader.lost.wait()
            log("%s: a real engine's NCCL communicator aborts when a peer goes away; exiting" % leader.lost_reason)
            return 1
        if worker is not None:
            reason = worker.watch(stop)
            log("rank %d: %s; exiting" % (rank, reason))
            return 1
        if watch is not None:
            log("%s; exiting" % watch())
            return 1
        threading.Event().wait()
    except rendezvous.GroupFailed as error:
        log("error: %s" % error)
        print("llmops-engine-standin: %s" % error, file=sys.stderr, flush=True)
        return 1
    except Terminated:
        log("SIGTERM: shutting down")
        return 0
    finally:
        stop.set()
        if leader is not None:
            leader.close()
        if httpd is not None:
            httpd.shutdown()
    return 0


def _token_seconds():
    """LLMOPS_STANDIN_TOKEN_SECONDS: the stand-in's time per generated token (test bed only, default 0)."""
    return float(os.environ.get("LLMOPS_STANDIN_TOKEN_SECONDS") or 0)


def _common_checks(prog, argv):
    problems = checks.unexpanded(argv, dict(os.environ))
    if problems:
        raise checks.Refused("error: " + "; ".join(problems))


def sglang_main(argv=None):
    signal.signal(signal.SIGTERM, _on_sigterm)
    prog = "launch_server.py"
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _common_checks(prog, argv)
        index = checks.schema_index("sglang")
        config = []
        for position, item in enumerate(argv[:-1]):
            if item == "--config":
                config = checks.config_argv(checks.read_config_yaml(argv[position + 1]))
        values, warnings = checks.parse(index, config + argv)
        for warning in warnings:
            log("warning: " + warning)
        log("sglang %s argv accepted by its recorded CLI (%d options)" % (index.version, len(index.options)))
        log(checks.check_model(values["model_path"]))
    except checks.Refused as error:
        return _refuse(prog, error)
    nnodes = int(values.get("nnodes") or 1)
    rank = int(values.get("node_rank") or 0)
    if nnodes > 1 and not values.get("dist_init_addr"):
        return _refuse(prog, checks.Refused("error: --nnodes %d needs --dist-init-addr" % nnodes))
    if not 0 <= rank < nnodes:
        return _refuse(prog, checks.Refused("error: --node-rank %d is outside 0..%d" % (rank, nnodes - 1), 1))
    tp = int(values.get("tp_size") or 1)
    state = server.State(
        "sglang",
        index.version,
        _first(values.get("served_model_name")) or values["model_path"],
        values["model_path"],
        [values["api_key"]] if values.get("api_key") else [],
        nnodes,
        tp,
        max_running=values.get("max_running_requests"),
        token_seconds=_token_seconds(),
    )
    log("rank %d of %d, tp %d, api key %s" % (rank, nnodes, tp, "required" if state.api_keys else "none"))
    timeout = int(values.get("dist_timeout") or DEFAULT_DIST_TIMEOUT)
    return run_group(
        state,
        values.get("host") or "127.0.0.1",
        int(values.get("port") or 30000),
        nnodes,
        rank,
        values.get("dist_init_addr"),
        timeout,
        serves_http=rank == 0,
    )


def vllm_main(argv=None):
    signal.signal(signal.SIGTERM, _on_sigterm)
    prog = "vllm serve"
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["serve"]:
        print("llmops-engine-standin: only `vllm serve` is stood in for (got %r)" % argv[:1], file=sys.stderr)
        return 2
    argv = argv[1:]
    model = None
    if argv and not argv[0].startswith("-"):
        model, argv = argv[0], argv[1:]
    try:
        _common_checks(prog, argv + ([model] if model else []))
        index = checks.schema_index("vllm")
        values, warnings = checks.parse(index, argv)
        for warning in warnings:
            log("warning: " + warning)
        model = model or values.get("model")
        if not model:
            raise checks.Refused("error: no model given (vllm serve <model>)")
        log("vllm %s argv accepted by its recorded CLI (%d options)" % (index.version, len(index.options)))
        log(checks.check_model(model))
    except checks.Refused as error:
        return _refuse(prog, error)
    keys = values.get("api_key") or ([os.environ["VLLM_API_KEY"]] if os.environ.get("VLLM_API_KEY") else [])
    keys = keys if isinstance(keys, list) else [keys]
    served = _first(values.get("served_model_name")) or model
    tp = int(values.get("tensor_parallel_size") or 1)
    dp = int(values.get("data_parallel_size") or 1)
    dp_local = int(values.get("data_parallel_size_local") or dp)
    nnodes = max(1, dp // max(1, dp_local)) if values.get("data_parallel_address") else 1
    rank = int(values.get("data_parallel_start_rank") or 0) // max(1, dp_local)
    addr = "%s:%s" % (values.get("data_parallel_address"), values.get("data_parallel_rpc_port") or 13345)
    headless = bool(values.get("headless"))
    if headless and rank == 0:
        return _refuse(prog, checks.Refused("error: --headless on data-parallel start rank 0 (the API node)", 1))
    if not headless and nnodes > 1 and "data_parallel_start_rank" in values:
        # vLLM 0.32/0.33 EngineArgs: a start rank on a node serving the API infers hybrid load balancing
        # (external with one rank per node), where the group then refuses its --headless nodes
        return _refuse(
            prog,
            checks.Refused(
                "error: --data-parallel-start-rank on the API node: vLLM infers hybrid (with "
                "--data-parallel-size-local 1 external) load balancing, where each node serves its own API and a "
                "--headless node is refused (vLLM: 'Remote engine 1 must not use --headless in external or hybrid "
                "dp lb mode'); internal load balancing gives the API node no start rank",
                1,
            ),
        )
    watch = None
    if values.get("distributed_executor_backend") == "ray":
        cluster = ray_cli.read_state()
        if cluster is None:
            return _refuse(prog, checks.Refused("error: --distributed-executor-backend ray: no Ray cluster here", 1))
        nnodes = sum(1 for node in cluster["nodes"] if node["Alive"])
        log("Ray cluster (the stand-in head): %d node(s) alive" % nnodes)
        watch = functools.partial(_ray_watch, nnodes)
    state = server.State(
        "vllm",
        index.version,
        served,
        model,
        keys,
        nnodes,
        tp,
        max_running=values.get("max_num_seqs"),
        token_seconds=_token_seconds(),
    )
    log("node %d of %d (data parallel %d, %d local), tp %d" % (rank, nnodes, dp, dp_local, tp))
    timeout = int(os.environ.get("LLMOPS_STANDIN_DIST_TIMEOUT") or DEFAULT_DIST_TIMEOUT)
    return run_group(
        state,
        values.get("host") or "0.0.0.0",
        int(values.get("port") or 8000),
        1 if watch else nnodes,  # Ray's nodes joined the head already (ray_cli): no rendezvous of our own
        rank,
        addr,
        timeout,
        serves_http=not headless,
        watch=watch,
    )


def _ray_watch(nnodes):
    """Blocks while every Ray node of the start is alive; vLLM's Ray executor dies with a lost node."""
    while True:
        cluster = ray_cli.read_state()
        alive = sum(1 for node in cluster["nodes"] if node["Alive"]) if cluster else 0
        if alive < nnodes:
            return "a Ray node died (%d of %d alive): vLLM's Ray workers are gone" % (alive, nnodes)
        time.sleep(1)
