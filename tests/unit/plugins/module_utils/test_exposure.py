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
    assert kinds == ["Service", "Route", "ServiceMonitor", "PersistentVolumeClaim", "Deployment", "Service", "Route"]
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
