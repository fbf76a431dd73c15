"""InferencePool, endpoint picker, InferenceObjective, Gateway and HTTPRoute objects (routing.py); their schemas
are checked against the real CRDs in the live dry run and tests/integration/test_autoscaling_schema.py."""

import json

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import routing
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

CONFIG = {
    "name": "deepseek-r1",
    "namespace": "llmops",
    "engine": "sglang",
    "port": 8000,
    "implementation": "kgateway",
    "epp_image": "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0",
    "objectives": [{"name": "deepseek-r1", "priority": 0}, {"name": "batch", "priority": -1}],
}


def by_kind(objects):
    found = {}
    for obj in objects:
        found.setdefault(obj["kind"], []).append(obj)
    return found


def test_pool_selects_the_api_pods_and_points_at_the_picker():
    objects = by_kind(routing.routing_manifests(CONFIG))
    [pool] = objects["InferencePool"]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    assert pool["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "deepseek-r1", "llmops.io/role": "leader"}
    }
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert pool["spec"]["endpointPickerRef"] == {
        "name": "deepseek-r1-epp",
        "port": {"number": 9002},
        "failureMode": "FailOpen",
    }
    [service] = [s for s in objects["Service"] if s["metadata"]["name"] == "deepseek-r1-epp"]
    deployment = objects["Deployment"][0]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 9002
    objectives = objects["InferenceObjective"]
    assert [o["metadata"]["name"] for o in objectives] == ["deepseek-r1", "batch"]
    assert objectives[1]["spec"] == {
        "priority": -1,
        "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "deepseek-r1"},
    }


def test_picker_runs_the_upstream_flags_and_sglang_metric_names_unprivileged():
    objects = by_kind(routing.routing_manifests(CONFIG))
    pod = objects["Deployment"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == CONFIG["epp_image"]
    args = container["args"]
    assert args[:6] == [
        "--pool-name",
        "deepseek-r1",
        "--pool-namespace",
        "llmops",
        "--pool-group",
        "inference.networking.k8s.io",
    ]
    assert "--config-file" in args and args[args.index("--config-file") + 1] == "/config/default-plugins.yaml"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["grpc"] == {"port": 9003, "service": "inference-extension"}
    assert pod["serviceAccountName"] == "deepseek-r1-epp"
    plugins = json.loads(objects["ConfigMap"][0]["data"]["default-plugins.yaml"])
    assert plugins["kind"] == "EndpointPickerConfig"
    extractor = [p for p in plugins["plugins"] if p["type"] == "core-metrics-extractor"][0]
    assert extractor["parameters"] == {"defaultEngine": "sglang"}
    weights = {p["pluginRef"]: p["weight"] for p in plugins["schedulingProfiles"][0]["plugins"]}
    assert weights == {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
    # vLLM is the extractor's default engine
    vllm = by_kind(routing.routing_manifests(dict(CONFIG, engine="vllm")))
    extractor = [
        p
        for p in json.loads(vllm["ConfigMap"][0]["data"]["default-plugins.yaml"])["plugins"]
        if p["type"] == "core-metrics-extractor"
    ][0]
    assert "parameters" not in extractor
    rules = objects["Role"][0]["rules"]
    assert {
        "apiGroups": ["inference.networking.k8s.io"],
        "resources": ["inferencepools"],
        "verbs": ["get", "watch", "list"],
    } in rules


def test_route_forwards_only_the_api_to_the_pool_through_our_gateway():
    objects = by_kind(routing.routing_manifests(dict(CONFIG, host="r1.example.com", tls_secret="r1-tls")))
    [gateway] = objects["Gateway"]
    assert gateway["spec"]["gatewayClassName"] == "kgateway"
    assert [listener["protocol"] for listener in gateway["spec"]["listeners"]] == ["HTTP", "HTTPS"]
    [route] = objects["HTTPRoute"]
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "deepseek-r1-gateway"}
    ]
    [rule] = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert rule["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "deepseek-r1"}
    ]
    assert rule["timeouts"] == {"request": "3600s"}
    assert route["spec"]["hostnames"] == ["r1.example.com"]
    assert "DestinationRule" not in objects


def test_istio_gets_a_destination_rule_and_an_existing_gateway_is_reused():
    config = dict(CONFIG, implementation="istio", gateway_name="inference-gateway", gateway_namespace="istio-ingress")
    objects = by_kind(routing.routing_manifests(config))
    assert "Gateway" not in objects
    assert objects["HTTPRoute"][0]["spec"]["parentRefs"][0] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "inference-gateway",
        "namespace": "istio-ingress",
    }
    [rule] = objects["DestinationRule"]
    assert rule["spec"]["host"] == "deepseek-r1-epp.llmops.svc.cluster.local"
    assert rule["spec"]["trafficPolicy"]["tls"] == {"mode": "SIMPLE", "insecureSkipVerify": True}
    gke = by_kind(routing.routing_manifests(dict(CONFIG, implementation="gke")))
    assert gke["Gateway"][0]["spec"]["gatewayClassName"] == "gke-l7-regional-external-managed"
    assert "timeouts" not in gke["HTTPRoute"][0]["spec"]["rules"][0]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"engine": "trtllm"}, "knows sglang and vllm"),
        ({"implementation": "nginx"}, "must be one of envoy-gateway, gke, istio, kgateway"),
        ({"failure_mode": "Maybe"}, "FailOpen or FailClose"),
        ({"epp_image": ""}, "epp_image is empty"),
        ({"objectives": [{"name": "Not_A_Label"}]}, "DNS label"),
        ({"objectives": [{"name": "ok", "priority": "high"}]}, "priority must be an integer"),
        ({"port": 0}, "is not a port"),
    ],
)
def test_bad_input_is_refused(change, message):
    with pytest.raises(LlmopsError, match=message):
        routing.routing_manifests(dict(CONFIG, **change))
