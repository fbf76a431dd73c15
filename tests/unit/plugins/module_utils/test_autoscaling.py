"""Scaler objects, replica bounds and windows (autoscaling.py); the ScaledObject/HPA schemas are checked
against the real CRD / API in tests/integration/test_autoscaling_schema.py and the live dry run."""

import copy

import pytest
from serving_cases import case

from ansible_collections.llmops.inference.plugins.module_utils import autoscaling, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# DeepSeek-R1 on 2 x 8 A800 (the plan's shape, cut to what autoscaling reads).
R1_PLAN = {
    "engine": "sglang",
    "nodes": 2,
    "accelerators_per_node": 8,
    "accelerators_used": 16,
    "tensor_parallel": 16,
    "pipeline_parallel": 1,
    "engine_args": ["--tp-size", "16"],
    "fits": True,
    "model": {"id": "deepseek-ai/DeepSeek-R1", "parameters": 671 * 10**9},
    "weights_gib_per_accelerator": 40.1,
}
# Qwen3-8B on 2 of a node's 8 GPUs.
SMALL_PLAN = dict(
    R1_PLAN,
    nodes=1,
    accelerators_per_node=2,
    accelerators_used=2,
    tensor_parallel=2,
    model={"id": "Qwen/Qwen3-8B", "parameters": 8 * 10**9},
    weights_gib_per_accelerator=8.0,
)
LWS = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "deepseek-r1"}}
SERVER_OBJECTS = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "deepseek-r1-api"}}, LWS]
CONFIG = {
    "name": "deepseek-r1",
    "namespace": "llmops",
    "engine": "sglang",
    "served_model_name": "deepseek-r1",
    "provider": "keda",
    "metrics": [{"signal": "queue", "target": 4}, {"signal": "kv_cache", "target": 0.8}],
    "accelerator_nodes": 6,
    "min_replicas": 1,
    "max_replicas": 0,
    "prometheus_url": "http://prometheus-operated.monitoring.svc:9090",
}


def plan_of(config=None, plan=None, objects=None, server_config=None, nodes=None):
    return autoscaling.autoscaling_plan(
        copy.deepcopy(config or CONFIG),
        copy.deepcopy(plan or R1_PLAN),
        SERVER_OBJECTS if objects is None else objects,
        server_config,
        nodes,
    )


def test_a_replica_is_a_whole_group_of_nodes():
    # 6 nodes, 2 per group: 3 groups, never a half group
    assert autoscaling.replica_capacity(R1_PLAN, 6)["max_replicas"] == 3
    assert autoscaling.replica_capacity(R1_PLAN, 5)["max_replicas"] == 2
    # a group's pods never share a node, even on 16-GPU nodes
    assert autoscaling.replica_capacity(R1_PLAN, 4, accelerators_per_node=16)["max_replicas"] == 2
    # one-node replicas never share a node either (the server's anti-affinity), however many GPUs it has
    assert autoscaling.replica_capacity(SMALL_PLAN, 3, accelerators_per_node=8)["max_replicas"] == 3


def test_bounds_refuse_what_the_cluster_cannot_hold_with_the_numbers():
    with pytest.raises(
        LlmopsError, match=r"cannot hold one replica.*1 accelerator node\(s\) with 8 .* 2 node\(s\) x 8"
    ):
        autoscaling.replica_bounds(R1_PLAN, 1)
    with pytest.raises(LlmopsError, match=r"autoscaling_max_replicas=4 is more than the cluster can hold \(3\)"):
        autoscaling.replica_bounds(R1_PLAN, 6, 1, 4)
    with pytest.raises(LlmopsError, match="at least 1: scaling to zero"):
        autoscaling.replica_bounds(R1_PLAN, 6, 0, 2)
    with pytest.raises(LlmopsError, match="min_replicas=3 is above the maximum 2"):
        autoscaling.replica_bounds(R1_PLAN, 6, 3, 2)
    # max 0 means what the cluster holds
    assert autoscaling.replica_bounds(R1_PLAN, 6, 2, 0)[:2] == (2, 3)


def test_scale_down_waits_for_a_40_minute_load_within_the_hpa_limit():
    # R1 across nodes: one-hour startup floor -> the HPA's one-hour maximum
    assert autoscaling.scale_down_window({}, 3600) == 3600
    assert autoscaling.scale_down_window({}, 7200) == 3600
    # a small model starting in 10 minutes still waits 40 minutes before dropping a replica
    assert autoscaling.scale_down_window({}, 600) == 2400
    assert autoscaling.scale_down_window({"scale_down_stabilization_seconds": 120}, 3600) == 120
    with pytest.raises(LlmopsError, match="the HPA accepts 1 to 3600"):
        autoscaling.scale_down_window({"scale_down_stabilization_seconds": 4000}, 600)


def test_keda_scaled_object_targets_the_lws_groups_with_summed_queries():
    result = plan_of()
    assert result["scale_target"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": "deepseek-r1",
    }
    assert (result["min_replicas"], result["max_replicas"]) == (1, 3)
    assert result["startup_seconds"] == 3600
    [scaled] = result["objects"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == result["scale_target"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 3)
    queue, kv = spec["triggers"]
    assert queue["metricType"] == "AverageValue" and kv["metricType"] == "AverageValue"
    assert queue["metadata"] == {
        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
        "query": 'sum(sglang:num_queue_reqs{model_name="deepseek-r1",namespace="llmops"})',
        "threshold": "4",
    }
    assert kv["metadata"]["query"] == 'sum(sglang:token_usage{model_name="deepseek-r1",namespace="llmops"})'
    assert kv["metadata"]["threshold"] == "0.8"
    behave = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behave["scaleDown"]["stabilizationWindowSeconds"] == 3600
    assert behave["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 600}]
    # one group per 30 minutes at most: a new group loads for up to an hour
    assert behave["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 1800}]


def test_vllm_metric_names_and_the_ttft_percentile():
    config = dict(CONFIG, engine="vllm", metrics=[{"signal": "queue", "target": 8}, {"signal": "ttft", "target": 2.5}])
    result = plan_of(config)
    queue, ttft = result["objects"][0]["spec"]["triggers"]
    assert queue["metadata"]["query"].startswith("sum(vllm:num_requests_waiting{")
    assert ttft["metricType"] == "Value"
    assert ttft["metadata"]["query"] == (
        "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket"
        '{model_name="deepseek-r1",namespace="llmops"}[2m])))'
    )
    assert [m["metric"] for m in result["metrics"]] == ["vllm:num_requests_waiting", "vllm:time_to_first_token_seconds"]
    assert autoscaling.metric_names("vllm")["kv_cache"] == "vllm:kv_cache_usage_perc"


def test_prometheus_adapter_hpa_on_a_deployment_with_its_rules():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "qwen3-8b"}}
    config = dict(
        CONFIG,
        name="qwen3-8b",
        served_model_name="qwen3-8b",
        engine="vllm",
        provider="prometheus-adapter",
        accelerator_nodes=2,
        accelerators_per_node=8,
        metrics=[
            {"signal": "queue", "target": 4},
            {"signal": "kv_cache", "target": 0.75},
            {"signal": "ttft", "target": 3},
        ],
    )
    result = plan_of(config, SMALL_PLAN, [deployment])
    rules, hpa = result["objects"]
    # 2 GPUs x 8 GiB / 0.25 GiB/s = 64 s load + 900 s warm-up
    assert result["max_replicas"] == 2 and result["startup_seconds"] == 964
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"]["name"] == "qwen3-8b-autoscaler"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "qwen3-8b"}
    queue, kv, ttft = hpa["spec"]["metrics"]
    assert queue == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "vllm_num_requests_waiting"},
            "target": {"type": "AverageValue", "averageValue": "4"},
        },
    }
    assert kv["pods"]["metric"]["name"] == "vllm_kv_cache_usage_perc"
    assert ttft["external"]["metric"]["name"] == "vllm_time_to_first_token_seconds_p95"
    assert ttft["external"]["target"] == {"type": "Value", "value": "3"}
    # a small model: 40 minutes before a replica goes, up one per startup budget
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 2400
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["periodSeconds"] == 964
    import json

    adapter = json.loads(rules["data"]["rules.json"])
    assert [r["name"]["as"] for r in adapter["rules"]] == ["vllm_num_requests_waiting", "vllm_kv_cache_usage_perc"]
    assert adapter["externalRules"][0]["metricsQuery"].startswith(
        "histogram_quantile(0.95, sum by (le) (rate(<<.Series>>"
    )


def test_startup_budget_comes_from_the_server_settings():
    # slow storage: 8 GPUs x 40.1 GiB / 0.05 GiB/s = 6416 s load + 600 + 900 -> the window caps at one hour,
    # the scale-up period at the HPA's 30 minutes
    result = plan_of(server_config={"load_gib_per_second": 0.05})
    assert result["startup_seconds"] == 7916
    assert result["scale_down_stabilization_seconds"] == 3600
    assert result["scale_up_period_seconds"] == 1800


@pytest.mark.parametrize(
    "change, message",
    [
        ({"provider": "hpa"}, "autoscaling_provider must be one of keda, prometheus-adapter"),
        ({"engine": "trtllm"}, "knows the metrics of sglang and vllm"),
        ({"metrics": []}, "at least one"),
        ({"metrics": [{"signal": "gpu_util", "target": 1}]}, "signal must be one of queue, kv_cache, ttft"),
        ({"metrics": [{"signal": "queue", "target": 0}]}, "queue target must be above 0"),
        ({"metrics": [{"signal": "queue", "target": "many"}]}, "must be a number"),
        ({"metrics": [{"signal": "queue", "target": 1}, {"signal": "queue", "target": 2}]}, "names queue twice"),
        ({"metrics": [{"signal": "kv_cache", "target": 80}]}, "share of the cache"),
        ({"prometheus_url": ""}, "autoscaling_prometheus_url must be"),
        ({"metric_labels": {"job": 'a"b'}}, "not a usable Prometheus label matcher"),
        ({"scale_up_period_seconds": 3600}, "the HPA accepts 1 to 1800"),
        ({"ttft_window": "two minutes", "metrics": [{"signal": "ttft", "target": 1}]}, "must be a duration"),
        ({"ttft_quantile": 1.5, "metrics": [{"signal": "ttft", "target": 1}]}, "must be below 1"),
    ],
)
def test_bad_input_is_refused_with_a_message(change, message):
    with pytest.raises(LlmopsError, match=message):
        plan_of(dict(CONFIG, **change))


def test_kserve_or_a_missing_workload_is_refused():
    with pytest.raises(LlmopsError, match="exactly one Deployment, StatefulSet or LeaderWorkerSet.*KServe"):
        plan_of(
            objects=[{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "x"}}]
        )


def test_extra_metric_labels_and_keda_authentication():
    config = dict(CONFIG, metric_labels={"job": "deepseek-r1-api"}, keda_authentication="prometheus-auth")
    trigger = plan_of(config)["objects"][0]["spec"]["triggers"][0]
    assert trigger["metadata"]["query"] == (
        'sum(sglang:num_queue_reqs{job="deepseek-r1-api",model_name="deepseek-r1",namespace="llmops"})'
    )
    assert trigger["authenticationRef"] == {"name": "prometheus-auth"}


def node(name, gpus, labels=None, unschedulable=False, taints=None):
    spec = {"unschedulable": True} if unschedulable else {}
    if taints:
        spec["taints"] = taints
    return {
        "metadata": {
            "name": name,
            "labels": dict({"nvidia.com/gpu.product": "NVIDIA-A800-SXM4-80GB"}, **(labels or {})),
        },
        "spec": spec,
        "status": {"allocatable": {"cpu": "64", "nvidia.com/gpu": str(gpus)}},
    }


def test_apply_mode_counts_the_nodes_that_can_run_an_engine_pod():
    nodes = [
        node("gpu-0", 8),
        node("gpu-1", 8),
        node("gpu-2", 8, unschedulable=True),  # cordoned
        node("gpu-3", 4),  # too few GPUs for a pod of 8
        node("gpu-4", 8),
        node("gpu-5", 8),
        {"metadata": {"name": "cpu-0"}, "status": {"allocatable": {"cpu": "8"}}},
    ]
    result = plan_of(dict(CONFIG, accelerator_nodes=0), nodes=nodes)
    assert result["capacity"]["accelerator_nodes"] == 4 and result["max_replicas"] == 2
    assert result["capacity"]["counted_from"] == "Nodes with allocatable nvidia.com/gpu"
    with pytest.raises(LlmopsError, match="no Node list was read"):
        plan_of(dict(CONFIG, accelerator_nodes=0))


def test_the_count_follows_the_engine_pods_placement():
    """The real builder's LWS (its node affinity on the GPU product, its tolerations) decides which nodes count."""
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    objects = serving.server_manifests(dict(config, autoscaled=True), plan, cache["layout"])
    pod = autoscaling.engine_pod_spec(objects)
    assert pod["containers"][0]["name"] == "engine"
    nodes = [
        node("a800-0", 8),
        node("a800-1", 8, taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]),  # tolerated by default
        node("h100-0", 8, labels={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}),  # another GPU
        node("a800-2", 8, taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]),  # not tolerated
        node("a800-3", 8, taints=[{"key": "dedicated", "value": "batch", "effect": "PreferNoSchedule"}]),
    ]
    assert [n["metadata"]["name"] for n in nodes if autoscaling.node_fits(n, pod)] == ["a800-0", "a800-1", "a800-3"]
    assert autoscaling.count_accelerator_nodes(nodes, "nvidia.com/gpu", 8, pod) == (3, 8)
    pinned = dict(pod, nodeSelector={"pool": "r1"})
    assert autoscaling.count_accelerator_nodes(
        [node("a", 8, {"pool": "r1"}), node("b", 8)], "nvidia.com/gpu", 8, pinned
    ) == (1, 8)


def test_an_autoscaled_server_leaves_its_replicas_to_the_autoscaler():
    """The server builder (serving.server_manifests) with autoscaling on: no spec.replicas (a re-applied serve.yml
    must not reset the autoscaler's count) and one pod per node even for a one-node replica."""
    for inventory in ("distill-1gpu", "deepseek-r1-2x8-a800-sglang"):
        config, plan, cache = case(inventory)
        fixed = [
            o
            for o in serving.server_manifests(config, plan, cache["layout"])
            if o["kind"] in autoscaling.SCALABLE_KINDS
        ]
        scaled = [
            o
            for o in serving.server_manifests(dict(config, autoscaled=True), plan, cache["layout"])
            if o["kind"] in autoscaling.SCALABLE_KINDS
        ]
        assert "replicas" in fixed[0]["spec"] and "replicas" not in scaled[0]["spec"], inventory
        template = scaled[0]["spec"].get("template") or scaled[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
        assert template["spec"]["affinity"]["podAntiAffinity"], inventory
