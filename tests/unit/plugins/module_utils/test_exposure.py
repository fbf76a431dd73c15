"""Service, Ingress, Route, ServiceMonitor and Open WebUI objects (exposure.py)."""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import exposure
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

BASE = {
    "name": "deepseek-r1",
    "namespace": "deepseek",
    "service_type": "ClusterIP",
    "service_port": 8000,
    "node_port": 0,
    "ingress": "none",
    "host": "",
    "ingress_class": "",
    "ingress_annotations": {},
    "tls_secret": "",
    "route_timeout": "10m",
    "service_monitor": False,
    "metrics_interval": "30s",
    "api_key_secret": "deepseek-r1-api-key",
    "api_key_secret_key": "api-key",
    "open_webui": {
        "enabled": False,
        "image": "ghcr.io/open-webui/open-webui:v0.6.41",
        "storage_gib": 20,
        "storage_class": "",
        "host": "",
    },
}


def test_service_selects_the_leader():
    service = exposure.exposure_manifests(BASE)[0]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "deepseek-r1", "llmops.io/role": "leader"}
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ingress_with_tls():
    objects = exposure.exposure_manifests(
        dict(BASE, ingress="ingress", host="r1.example.com", tls_secret="r1-tls", ingress_class="nginx")
    )
    ingress = objects[1]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["r1.example.com"], "secretName": "r1-tls"}]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "deepseek-r1",
        "port": {"number": 8000},
    }


def test_route_and_webui_and_servicemonitor():
    objects = exposure.exposure_manifests(
        dict(BASE, ingress="route", service_monitor=True, open_webui=dict(BASE["open_webui"], enabled=True))
    )
    kinds = [o["kind"] for o in objects]
    # NetworkPolicy last: on by default (issue 10, Medium).
    assert kinds == [
        "Service",
        "Route",
        "ServiceMonitor",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "Route",
        "NetworkPolicy",
    ]
    assert objects[1]["apiVersion"] == "route.openshift.io/v1"
    assert objects[1]["spec"]["tls"]["termination"] == "edge"
    webui = objects[4]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in webui["env"]}
    assert env["OPENAI_API_BASE_URL"]["value"] == "http://deepseek-r1.deepseek.svc:8000/v1"
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "deepseek-r1-api-key"
    endpoint = objects[2]["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["authorization"]["credentials"]["key"] == "api-key"


def test_across_nodes_the_api_service_does_not_take_the_lws_headless_service_name():
    """The LWS controller owns a headless Service named after the LWS; found on the test bed, where ours
    collided with it (test_serve_live.py)."""
    objects = exposure.exposure_manifests(
        dict(BASE, leader_worker_set=True, ingress="route", open_webui=dict(BASE["open_webui"], enabled=True))
    )
    assert objects[0]["metadata"]["name"] == "deepseek-r1-api"
    assert objects[1]["spec"]["to"]["name"] == "deepseek-r1-api"
    webui = objects[3]["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e for e in webui["env"]}["OPENAI_API_BASE_URL"]["value"] == (
        "http://deepseek-r1-api.deepseek.svc:8000/v1"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ingress": "gateway"}, "inference_exposure_ingress"),
        ({"ingress": "ingress"}, "needs inference_exposure_host"),
        ({"service_type": "ExternalName"}, "service_type"),
    ],
)
def test_bad_input(change, message):
    with pytest.raises(LlmopsError, match=message):
        exposure.exposure_manifests(dict(BASE, **change))


# --- issue 10 #12 and Medium: paths, TLS, streaming, NetworkPolicy, monitoring, Open WebUI ---


def _by_kind(objects):
    result = {}
    for obj in objects:
        result.setdefault(obj["kind"], []).append(obj)
    return result


def test_ingress_forwards_only_the_openai_paths_and_streams():
    """vLLM's API key guards /v1 only: /invocations, /metrics and /health answer anyone who reaches them."""
    ingress = _by_kind(exposure.exposure_manifests(dict(BASE, ingress="ingress", host="r1.example.com")))["Ingress"][0]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/v1", "Prefix")]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    # No Secret and no issuer: no TLS block (plain HTTP behind the controller's own TLS, if any).
    assert "tls" not in ingress["spec"]
    # The inventory's own annotations win.
    custom = dict(
        BASE,
        ingress="ingress",
        host="h",
        ingress_annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"},
    )
    ingress = _by_kind(exposure.exposure_manifests(custom))["Ingress"][0]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"


def test_ingress_tls_from_a_cert_manager_issuer():
    config = dict(
        BASE, ingress="ingress", host="r1.example.com", tls_issuer="letsencrypt", tls_issuer_kind="ClusterIssuer"
    )
    ingress = _by_kind(exposure.exposure_manifests(config))["Ingress"][0]
    assert ingress["spec"]["tls"] == [{"hosts": ["r1.example.com"], "secretName": "deepseek-r1-tls"}]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    with pytest.raises(LlmopsError, match="tls_issuer_kind"):
        exposure.exposure_manifests(dict(config, tls_issuer_kind="Vault"))


def test_route_forwards_only_v1_but_the_webui_route_everything():
    objects = _by_kind(
        exposure.exposure_manifests(dict(BASE, ingress="route", open_webui=dict(BASE["open_webui"], enabled=True)))
    )
    api, webui = objects["Route"]
    assert api["spec"]["path"] == "/v1" and "path" not in webui["spec"]
    assert api["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"] == "10m"


def test_network_policy_opens_the_group_and_the_api_only_to_the_exposure_path():
    config = dict(
        BASE,
        ingress="ingress",
        host="h",
        ingress_namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        open_webui=dict(BASE["open_webui"], enabled=True),
    )
    policy = _by_kind(exposure.exposure_manifests(config))["NetworkPolicy"][0]
    pods = {"app.kubernetes.io/name": "deepseek-r1", "app.kubernetes.io/component": "inference-server"}
    assert policy["spec"]["podSelector"] == {"matchLabels": pods}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    group, api = policy["spec"]["ingress"]
    # Group-internal: every port (NCCL, Ray, dist-init) between the server's own pods.
    assert group == {"from": [{"podSelector": {"matchLabels": pods}}]}
    assert api["ports"] == [{"protocol": "TCP", "port": "http"}]
    assert api["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "deepseek-r1-webui"}}},
    ]
    route = _by_kind(exposure.exposure_manifests(dict(BASE, ingress="route")))["NetworkPolicy"][0]
    assert route["spec"]["ingress"][1]["from"] == [{"namespaceSelector": exposure.ROUTER_NAMESPACE_SELECTOR}]
    node_port = _by_kind(exposure.exposure_manifests(dict(BASE, service_type="NodePort")))["NetworkPolicy"][0]
    assert node_port["spec"]["ingress"][1] == {"ports": [{"protocol": "TCP", "port": "http"}]}
    assert "NetworkPolicy" not in _by_kind(exposure.exposure_manifests(dict(BASE, network_policy=False)))


def test_service_carries_the_engine_label_engine_monitoring_selects():
    service = exposure.exposure_manifests(dict(BASE, engine="sglang"))[0]
    assert service["metadata"]["labels"]["llmops.io/engine"] == "sglang"


def test_service_monitor_and_engine_monitoring_together_are_refused():
    with pytest.raises(LlmopsError, match="scrape the leaders twice"):
        exposure.exposure_manifests(dict(BASE, service_monitor=True, engine_monitoring=True))


def test_open_webui_secret_key_resources_and_embedding_mirror():
    webui = dict(BASE["open_webui"], enabled=True, embedding_model="BAAI/bge-m3", hf_endpoint="https://hf-mirror.com")
    deployment = _by_kind(exposure.exposure_manifests(dict(BASE, open_webui=webui)))["Deployment"][0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["WEBUI_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "deepseek-r1-webui-secret",
        "key": "webui-secret-key",
    }
    assert env["RAG_EMBEDDING_MODEL"]["value"] == "BAAI/bge-m3"
    assert env["HF_ENDPOINT"]["value"] == "https://hf-mirror.com"
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
