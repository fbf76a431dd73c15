"""The serving pre-flight (module_utils/nccl_preflight.py): objects built from the engine pod spec, and the
judgement of real pod logs.

The logs are real: the sweep run as two node ranks on the 2 x H200 host (fixtures/nccl_tests/README.md). The
"Socket fallback between nodes" case joins that table with the two-host log written in the published NCCL
format (fixtures/nccl_logs/README.md): no HCA exists here to record a real one.
"""

import os

import pytest
from serving_cases import case

from ansible_collections.llmops.inference.plugins.module_utils import nccl_preflight, serving
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
    for bad in (
        {"backend": "mpi"},
        {"backend": "nccl", "device": "cpu"},
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
