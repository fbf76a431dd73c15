"""Autoscaling and routing through the real ansible-playbook (playbooks/serve.yml in render mode), every custom
resource checked against its real CRD's openAPI schema offline: KEDA's ScaledObject and the Gateway API's
Gateway/HTTPRoute from the pinned module zips of the Go module proxy (goproxy_crds.py; the test bed may not
install cluster-wide CRDs, so these are not dry-run there), InferencePool/InferenceObjective from ../shared/crds
(also dry-run live in test_day_two_live.py). The CRDs' CEL rules (x-kubernetes-validations) need an apiserver:
the live dry run covers them for the kinds it has.
"""

import copy
import json

import jsonschema
import pytest
from goproxy_crds import schema as goproxy_schema
from render_helpers import _openapi_to_jsonschema, crd_schema, pruned_fields, rendered, rendered_files, run_render

SHARED = {
    "InferencePool": ("gateway-api-inference-extension/inference.networking.k8s.io_inferencepools.yaml", "v1"),
    "InferenceObjective": (
        "gateway-api-inference-extension/inference.networking.x-k8s.io_inferenceobjectives.yaml",
        "v1alpha2",
    ),
}


def check_against_crd(obj):
    kind = obj["kind"]
    if kind in SHARED:
        schema = crd_schema(*SHARED[kind])
    else:
        schema = goproxy_schema(kind)
    assert pruned_fields(obj, schema) == [], "%s/%s has fields the CRD drops" % (kind, obj["metadata"]["name"])
    jsonschema.Draft7Validator(_openapi_to_jsonschema(copy.deepcopy(schema))).validate(obj)


def render(tmp_path, inventory, settings):
    out = tmp_path / "rendered"
    result = run_render(inventory, str(out), "-e", json.dumps(settings))
    return result, out


def test_keda_and_routing_render_for_the_lws_groups_and_pass_the_crd_schemas(tmp_path):
    result, out = render(
        tmp_path,
        "deepseek-r1-2x8-a800-sglang",
        {
            "autoscaling_enabled": True,
            "autoscaling_accelerator_nodes": 6,
            "autoscaling_metrics": [
                {"signal": "queue", "target": 4},
                {"signal": "kv_cache", "target": 0.8},
                {"signal": "ttft", "target": 5},
            ],
            "inference_routing_enabled": True,
            "inference_routing_host": "r1.example.com",
        },
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    objects = rendered(str(out))
    [lws] = objects["LeaderWorkerSet"]
    assert "replicas" not in lws["spec"], "the autoscaler owns the group count"
    [scaled] = objects["ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": lws["metadata"]["name"],
    }
    # 6 nodes / 2 per group
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 3)
    assert [t["metadata"]["query"].split("(")[0] for t in scaled["spec"]["triggers"]] == [
        "sum",
        "sum",
        "histogram_quantile",
    ]
    assert "between 1 and 3 replica(s) of 2 node(s) each" in " ".join(result.stdout.split())
    checked = []
    for kind in ("ScaledObject", "InferencePool", "InferenceObjective", "Gateway", "HTTPRoute"):
        for obj in objects[kind]:
            check_against_crd(obj)
            checked.append(kind)
    assert len(checked) == 5
    [pool] = objects["InferencePool"]
    leader_labels = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"]
    assert pool["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": lws["metadata"]["name"],
        "llmops.io/role": "leader",
    }
    assert set(pool["spec"]["selector"]["matchLabels"].items()) <= set(leader_labels.items())
    assert objects["HTTPRoute"][0]["spec"]["hostnames"] == ["r1.example.com"]
    # the picker's image is a variable like every other image
    epp = [d for d in objects["Deployment"] if d["metadata"]["name"].endswith("-epp")][0]
    assert epp["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "registry.k8s.io/gateway-api-inference-extension/epp:"
    )


def test_prometheus_adapter_hpa_for_a_deployment(tmp_path):
    result, out = render(
        tmp_path,
        "distill-1gpu",
        {
            "autoscaling_enabled": True,
            "autoscaling_provider": "prometheus-adapter",
        },
    )
    # the example inventory lists no gpu_nodes and render mode reads no Nodes: it says what to set
    assert result.returncode != 0
    assert "autoscaling_accelerator_nodes is 0 and no Node list was read" in result.stdout, result.stdout[-3000:]
    result, out = render(
        tmp_path,
        "distill-1gpu",
        {
            "autoscaling_enabled": True,
            "autoscaling_provider": "prometheus-adapter",
            "autoscaling_accelerator_nodes": 3,
            "autoscaling_min_replicas": 2,
        },
    )
    assert result.returncode == 0, result.stdout[-4000:]
    objects = rendered(str(out))
    [hpa] = objects["HorizontalPodAutoscaler"]
    [deployment] = [
        d for d in objects["Deployment"] if d["spec"]["template"]["metadata"]["labels"].get("llmops.io/role")
    ]
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)
    assert [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]] == [
        "vllm_num_requests_waiting",
        "vllm_kv_cache_usage_perc",
    ]
    rules = [c for c in objects["ConfigMap"] if c["metadata"]["name"].endswith("-prometheus-adapter-rules")]
    assert len(rules) == 1 and "vllm:num_requests_waiting" in rules[0]["data"]["rules.json"]
    assert "ScaledObject" not in objects


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"autoscaling_enabled": True, "autoscaling_accelerator_nodes": 6, "autoscaling_max_replicas": 5},
            "autoscaling_max_replicas=5 is more than the cluster can hold (3)",
        ),
        # the role's argument spec refuses an unknown choice
        (
            {"inference_routing_enabled": True, "inference_routing_gateway_implementation": "nginx"},
            "value of inference_routing_gateway_implementation must be one of: kgateway, istio, envoy-gateway, gke",
        ),
    ],
)
def test_bad_day_two_input_fails_before_anything_is_rendered(tmp_path, settings, message):
    result, out = render(tmp_path, "deepseek-r1-2x8-a800-sglang", settings)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert rendered_files(str(out)) == []
