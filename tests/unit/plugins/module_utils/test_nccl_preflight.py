"""The serving pre-flight (module_utils/nccl_preflight.py): objects built from the engine pod spec, and the
judgement of real pod logs.

The logs are real: the sweep run as two node ranks on the 2 x H200 host (fixtures/nccl_tests/README.md). The
"Socket fallback between nodes" case joins that table with the two-host log written in the published NCCL
format (fixtures/nccl_logs/README.md): no HCA exists here to record a real one.
"""

import os

import pytest
from serving_cases import case

from ansible_collections.llmops.inference.plugins.module_utils import nccl_preflight, nccl_tests, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as handle:
        return handle.read()


def test_objects_for_the_two_node_flagship_come_from_the_engine_pod_spec():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    cache = cache["layout"]
    configmap, service, job = nccl_preflight.preflight_manifests(config, plan, cache)
    assert configmap["data"]["nccl_torch_sweep.py"].startswith("# -*- coding: utf-8 -*-")
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
        "Indexed",
        plan["nodes"],
        plan["nodes"],
        0,
    )
    pod = spec["template"]["spec"]
    engine = serving.pod_spec(serving.resolve_accelerator(config, plan), plan, cache, "worker")
    container, engine_container = pod["containers"][0], engine["containers"][0]
    # what decides whether the fabric works is the engine's own
    assert container["image"] == engine_container["image"]
    assert container["resources"] == engine_container["resources"]
    assert container["securityContext"] == engine_container["securityContext"]
    for key in ("hostNetwork", "nodeSelector", "tolerations", "schedulerName", "securityContext"):
        assert pod.get(key) == engine.get(key), key
    nccl = {e["name"]: e.get("value") for e in engine_container["env"] if e["name"].startswith("NCCL_")}
    pre_env = {e["name"]: e.get("value") for e in container["env"]}
    assert {k: pre_env[k] for k in nccl if k != "NCCL_DEBUG"} == {k: v for k, v in nccl.items() if k != "NCCL_DEBUG"}
    assert pre_env["NCCL_DEBUG"] == "INFO"
    # no model, no probes, no wait for the cache; one pod per node
    assert "initContainers" not in pod and not any(v["name"] == "model-cache" for v in pod["volumes"])
    assert "startupProbe" not in container and "readinessProbe" not in container
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "nccl-preflight"
    command = container["command"][2]
    gpus = plan["accelerators_used"] // plan["nodes"]
    assert '--gpus %d --nodes %d --node-rank "$JOB_COMPLETION_INDEX"' % (gpus, plan["nodes"]) in command
    assert "--master-addr %s-nccl-preflight-0.%s-nccl-preflight" % (config["name"], config["name"]) in command
    assert pod["subdomain"] == service["metadata"]["name"] and pod["restartPolicy"] == "Never"


def test_single_node_plans_need_no_preflight():
    config, plan, cache = case("distill-1gpu")
    cache = cache["layout"]
    assert nccl_preflight.preflight_manifests(config, plan, cache) == []


def test_gloo_stand_in_and_bad_settings():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    cache = cache["layout"]
    job = nccl_preflight.preflight_manifests(config, plan, cache, {"backend": "gloo", "device": "cpu"})[2]
    assert "--backend gloo --device cpu" in job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == config["image"]
    other = nccl_preflight.preflight_manifests(config, plan, cache, {"image": "registry.local/torch:cpu"})[2]
    assert other["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/torch:cpu"
    for bad in (
        {"backend": "mpi"},
        {"backend": "nccl", "device": "cpu"},
        {"backend": "hccl", "device": "cuda"},
        {"device": "tpu"},
        {"min_bytes": "2G", "max_bytes": "1G"},
        {"port": 70000},
        {"expected_transport": "infiniband"},
    ):
        with pytest.raises(LlmopsError):
            nccl_preflight.preflight_manifests(config, plan, cache, bad)


def _logs(rank1="h200x2_torch_sweep_2nodes_nccl_rank1.txt"):
    return {
        "r1-nccl-preflight-0-abc": fixture("nccl_tests", "h200x2_torch_sweep_2nodes_nccl.txt"),
        "r1-nccl-preflight-1-def": fixture("nccl_tests", rank1),
    }


def test_real_two_rank_logs_pass_and_print_a_table():
    result = nccl_preflight.judge_logs(_logs(), {"expected_transport": "nvlink", "max_bytes": "256M"})
    assert result["passed"], result["reasons"]
    assert result["peak_busbw_gbps"] > 200 and len(result["table"]) == 9
    assert result["transports"]["intra_node"] == ["nvlink"]
    lines = nccl_preflight.report_lines(result)
    assert lines[-1].startswith("PASSED: peak") and "channels inside nodes: nvlink" in lines[-2]


def test_socket_fallback_between_nodes_stops_the_serve_stage():
    logs = _logs()
    logs["r1-nccl-preflight-1-def"] = fixture("nccl_logs", "nccl-2node-ib-socket-fallback.log")
    facts = {"devices": [{"name": "mlx5_0", "ports": [{"port": 1, "state": "ACTIVE", "link_layer": "InfiniBand"}]}]}
    result = nccl_preflight.judge_logs(logs, {"max_bytes": "256M"}, rdma_facts=facts)
    assert not result["passed"] and result["expected_transport"] == "ib"
    assert any("run via NET/Socket (TCP), not NET/IB (InfiniBand)" in r for r in result["reasons"])
    assert nccl_preflight.report_lines(result)[-1].startswith("FAILED: ")


def test_a_rank_that_printed_nothing_and_a_bandwidth_floor():
    result = nccl_preflight.judge_logs({"p-0": "Traceback: connection refused", "p-1": ""})
    assert not result["passed"] and "no pod printed the all-reduce table" in result["reasons"][0]
    assert "connection refused" in result["reasons"][0]
    slow = nccl_preflight.judge_logs(_logs(), {"min_busbw_gbps": 1000, "max_bytes": "256M"})
    assert not slow["passed"] and "below the required 1000.00 GB/s" in slow["reasons"][0]
    with pytest.raises(LlmopsError):
        nccl_preflight.judge_logs({})


def _command(job):
    return job["spec"]["template"]["spec"]["containers"][0]["command"][2]


def test_all_to_all_joins_when_expert_parallelism_spans_nodes():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    cache = cache["layout"]
    # TP 16 with EP 1: every expert lives on every rank, no token crosses a node in a dispatch
    assert _command(nccl_preflight.preflight_manifests(config, plan, cache)[2]).endswith("--ops all_reduce")
    ep_plan = dict(plan, expert_parallel=16)
    assert _command(nccl_preflight.preflight_manifests(config, ep_plan, cache)[2]).endswith(
        "--ops all_reduce,all_to_all"
    )
    # EP inside one node (8 of 8 GPUs) needs no cross-node all-to-all; asked for explicitly it runs anyway
    assert _command(nccl_preflight.preflight_manifests(config, dict(plan, expert_parallel=8), cache)[2]).endswith(
        "--ops all_reduce"
    )
    forced = nccl_preflight.preflight_manifests(config, plan, cache, {"collectives": ["all_reduce", "all_to_all"]})
    assert _command(forced[2]).endswith("--ops all_reduce,all_to_all")
    for bad in (["all_to_all"], ["all_reduce", "broadcast"], [], "sometimes"):
        with pytest.raises(LlmopsError, match="preflight collectives"):
            nccl_preflight.preflight_manifests(config, plan, cache, {"collectives": bad})


def test_real_all_to_all_over_nvlink_passes_and_both_tables_print():
    """Recorded on 2 x H200 (benchmarks/device/all_to_all_proof.sh): all-to-all has no in-place form (N/A)."""
    logs = {"p-0": fixture("nccl_tests", "h200x2_torch_sweep_all_to_all.txt")}
    result = nccl_preflight.judge_logs(logs, {"expected_transport": "nvlink", "collectives": "all_reduce,all_to_all"})
    assert result["passed"], result["reasons"]
    assert result["peaks"]["all_reduce"] > 300 and result["peaks"]["all_to_all"] > 300
    assert result["peak_busbw_gbps"] == result["peaks"]["all_reduce"]
    a2a = [row for row in result["table"] if row["collective"] == "all_to_all"]
    assert len(a2a) == 11 and all(row["busbw_in_place_gbps"] is None and row["wrong"] == 0 for row in a2a)
    lines = nccl_preflight.report_lines(result)
    assert any(line.startswith("all-to-all") and line.split()[-2] == "N/A" for line in lines)
    assert lines[-1].startswith("PASSED: peak all-reduce 3") and "all-to-all 3" in lines[-1]


def test_all_to_all_over_shared_memory_fails_by_transport_and_by_its_floor():
    logs = {"p-0": fixture("nccl_tests", "h200x2_torch_sweep_all_to_all_p2p_disabled.txt")}
    result = nccl_preflight.judge_logs(
        logs, {"expected_transport": "nvlink", "min_all_to_all_busbw_gbps": 100, "collectives": "auto"}
    )
    assert not result["passed"] and 20 < result["peaks"]["all_to_all"] < 30
    assert any("via SHM" in reason for reason in result["reasons"])
    assert any(reason.startswith("all-to-all: peak bus bandwidth") for reason in result["reasons"])


def test_gloo_stand_in_all_to_all_and_a_sweep_that_stopped_before_its_all_to_all():
    text = fixture("nccl_tests", "h200_host_torch_sweep_all_to_all_2nodes_gloo_cpu.txt")
    settings = {"backend": "gloo", "device": "cpu", "collectives": ["all_reduce", "all_to_all"]}
    result = nccl_preflight.judge_logs({"p-0": text, "p-1": ""}, settings)
    assert result["passed"], result["reasons"]
    assert set(result["peaks"]) == {"all_reduce", "all_to_all"}
    cut = text[: text.index("# nccl_torch_sweep op all_to_all")]
    stopped = nccl_preflight.judge_logs({"p-0": cut + "RuntimeError: Connection reset by peer"}, settings)
    assert not stopped["passed"] and stopped["reasons"] == [
        "all-to-all: no table was printed (the sweep stopped before it)"
    ]


def test_gloo_cannot_prove_a_fabric_the_facts_say_exists():
    """The stand-in's recorded gloo run judged where the RDMA facts say InfiniBand: TCP sockets carried it."""
    text = fixture("nccl_tests", "h200_host_torch_sweep_all_to_all_2nodes_gloo_cpu.txt")
    facts = {"devices": [{"name": "mlx5_0", "ports": [{"port": 1, "state": "ACTIVE", "link_layer": "InfiniBand"}]}]}
    result = nccl_preflight.judge_logs({"p-0": text}, {"backend": "gloo", "device": "cpu"}, rdma_facts=facts)
    assert not result["passed"] and result["expected_transport"] == "ib"
    assert result["reasons"] == [
        "the collective ran with gloo over TCP sockets, not NET/IB (InfiniBand): the engine's NCCL would use the "
        "fabric, which this run did not test (backend nccl runs it)"
    ]
    assert nccl_preflight.judge_logs(
        {"p-0": text}, {"backend": "gloo", "device": "cpu", "expected_transport": "socket"}
    )["passed"]


def test_auto_runs_the_engines_own_library_nccl_on_gpus_hccl_on_ascend_npus():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    assert "--backend nccl --device cuda" in _command(
        nccl_preflight.preflight_manifests(config, plan, cache["layout"])[2]
    )
    config, plan, cache = case("ascend-910b")
    job = nccl_preflight.preflight_manifests(config, plan, cache["layout"])[2]
    command = _command(job)
    assert "--backend hccl --device npu" in command and "--gpus 8 --nodes 2" in command
    # the NPU pods keep the engine's Ascend resources and host mounts (driver, npu-smi)
    engine = serving.pod_spec(serving.resolve_accelerator(config, plan), plan, cache["layout"], "worker")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == engine["containers"][0]["resources"]
    assert any((v.get("hostPath") or {}).get("path", "").startswith("/usr/local/Ascend") for v in pod["volumes"])
    # device cpu alone means the gloo stand-in
    assert "--backend gloo --device cpu" in _command(
        nccl_preflight.preflight_manifests(config, plan, cache["layout"], {"device": "cpu"})[2]
    )


def test_hccl_output_is_not_judged_by_nccl_transport_lines():
    """The gloo recording with its header's backend renamed to hccl, as the sweep prints it on NPUs (no NPU here to
    record on): HCCL prints no NCCL channel lines, so an expected fabric is not judged from them (hccl_check covers
    the NPUs' links in stage 1)."""
    text = fixture("nccl_tests", "h200_host_torch_sweep_all_to_all_2nodes_gloo_cpu.txt")
    hccl = text.replace(" backend gloo ", " backend hccl ")
    assert nccl_tests.sweep_backend(text) == "gloo" and nccl_tests.sweep_backend(hccl) == "hccl"
    assert nccl_preflight.judge_logs({"p-0": hccl}, {"expected_transport": "roce"})["passed"]
    # backend auto reads what ran: the gloo run cannot prove RoCE
    gloo = nccl_preflight.judge_logs({"p-0": text}, {"expected_transport": "roce"})
    assert not gloo["passed"] and "ran with gloo over TCP sockets" in gloo["reasons"][0]
    # an output from before the header named its backend is NCCL's, judged by its channel lines
    older = fixture("nccl_tests", "h200_host_torch_sweep_2nodes_gloo_cpu.txt")
    assert nccl_tests.sweep_backend(older) is None
    assert (
        "no NCCL channel lines"
        in nccl_preflight.judge_logs({"p-0": older}, {"expected_transport": "roce"})["reasons"][0]
    )
