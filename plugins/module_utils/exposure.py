# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the server is reached: Service for the leader, Ingress or OpenShift Route, Open WebUI, ServiceMonitor."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

INGRESS_KINDS = ("none", "ingress", "route")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# What the Ingress / Route forward: the OpenAI API only. The engines also answer /metrics, /invocations
# (vLLM, outside its API key's /v1 guard), /health, /get_server_info (SGLang) and admin paths: none of those
# belong on the public side. Probes and Prometheus reach the pods directly.
API_PATHS = ("/v1",)
# Streaming: ingress-nginx must pass tokens through as they come (no response buffering) and keep the
# connection for long generations. Annotations the inventory sets win.
NGINX_STREAMING_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
}
CERT_MANAGER_ISSUER_ANNOTATIONS = {
    "ClusterIssuer": "cert-manager.io/cluster-issuer",
    "Issuer": "cert-manager.io/issuer",
}


def validate(config):
    if config.get("ingress") not in INGRESS_KINDS:
        raise LlmopsError(
            "inference_exposure_ingress must be one of %s, got %r" % (", ".join(INGRESS_KINDS), config.get("ingress"))
        )
    if config.get("service_type") not in SERVICE_TYPES:
        raise LlmopsError("inference_exposure_service_type must be one of %s" % ", ".join(SERVICE_TYPES))
    if config["ingress"] == "ingress" and not config.get("host"):
        raise LlmopsError("an Ingress needs inference_exposure_host (the DNS name clients use)")
    if (
        config.get("tls_issuer")
        and config.get("tls_issuer_kind", "ClusterIssuer") not in CERT_MANAGER_ISSUER_ANNOTATIONS
    ):
        raise LlmopsError(
            "inference_exposure_tls_issuer_kind must be one of %s" % ", ".join(sorted(CERT_MANAGER_ISSUER_ANNOTATIONS))
        )
    if config.get("service_monitor") and config.get("engine_monitoring"):
        raise LlmopsError(
            "the engine_monitoring role already scrapes the engine pods; a ServiceMonitor of the exposure would scrape "
            "the leaders twice: set inference_exposure_service_monitor: false or engine_monitoring_enabled: false"
        )
    return config


def _meta(config, name, component):
    return {
        "name": name,
        "namespace": config["namespace"],
        "labels": {
            "app.kubernetes.io/name": config["name"],
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "llmops.inference",
        },
    }


def service_name(config):
    """Name of the API Service. A LeaderWorkerSet's controller owns a headless Service named after the
    LWS (the group's pod DNS), so across nodes ours takes an ``-api`` suffix instead of colliding with it."""
    return "%s-api" % config["name"] if config.get("leader_worker_set") else config["name"]


def service(config):
    spec = {
        "type": config["service_type"],
        "selector": serving.leader_selector(config),
        "ports": [{"name": "http", "port": int(config["service_port"]), "targetPort": "http", "protocol": "TCP"}],
    }
    if config["service_type"] == "NodePort" and config.get("node_port"):
        spec["ports"][0]["nodePort"] = int(config["node_port"])
    meta = _meta(config, service_name(config), "inference-server")
    if config.get("engine"):
        # engine_monitoring's ServiceMonitor selects Services by this label (the pods carry it too).
        meta["labels"]["llmops.io/engine"] = config["engine"]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def tls_secret_name(config, name):
    """The TLS Secret of an Ingress: the given one, or <name>-tls filled by cert-manager's issuer; "" for none."""
    if config.get("tls_secret"):
        return config["tls_secret"]
    return "%s-tls" % name if config.get("tls_issuer") else ""


def ingress(config, name, service_name, port, paths=API_PATHS):
    """An Ingress to ``service_name`` for ``paths`` only (the API: /v1), TLS when a Secret or an issuer is given."""
    annotations = dict(NGINX_STREAMING_ANNOTATIONS)
    annotations.update(config.get("ingress_annotations") or {})
    backend = {"service": {"name": service_name, "port": {"number": int(port)}}}
    spec = {
        "rules": [
            {
                "host": config["host"],
                "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": backend} for path in paths]},
            }
        ]
    }
    if config.get("ingress_class"):
        spec["ingressClassName"] = config["ingress_class"]
    secret = tls_secret_name(config, name)
    if secret:
        spec["tls"] = [{"hosts": [config["host"]], "secretName": secret}]
        if config.get("tls_issuer") and not config.get("tls_secret"):
            kind = config.get("tls_issuer_kind") or "ClusterIssuer"
            annotations[CERT_MANAGER_ISSUER_ANNOTATIONS[kind]] = config["tls_issuer"]
    meta = _meta(config, name, "exposure")
    meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def route(config, name, service_name, host, path=API_PATHS[0]):
    """An edge-TLS Route; ``path`` limits it to the API (/v1); None routes every path (Open WebUI)."""
    spec = {
        "to": {"kind": "Service", "name": service_name, "weight": 100},
        "port": {"targetPort": "http"},
        "tls": {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"},
        "wildcardPolicy": "None",
    }
    if host:
        spec["host"] = host
    if path:
        spec["path"] = path
    meta = _meta(config, name, "exposure")
    # Long generations stream for minutes; the router's 30 s default would cut them.
    meta["annotations"] = {"haproxy.router.openshift.io/timeout": config.get("route_timeout", "1h")}
    return {"apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": meta, "spec": spec}


def service_monitor(config):
    endpoint = {"port": "http", "path": "/metrics", "interval": config.get("metrics_interval", "30s")}
    if config.get("api_key_secret"):
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": config["api_key_secret"], "key": config.get("api_key_secret_key", "api-key")},
        }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(config, config["name"], "inference-server"),
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": config["name"],
                    "app.kubernetes.io/component": "inference-server",
                }
            },
            "namespaceSelector": {"matchNames": [config["namespace"]]},
            "endpoints": [endpoint],
        },
    }


WEBUI_SECRET_KEY_KEY = "webui-secret-key"
WEBUI_DEFAULT_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def webui_secret_name(config):
    return (config.get("open_webui") or {}).get("secret_key_secret") or "%s-webui-secret" % config["name"]


def webui_env(config):
    """Open WebUI's session-signing key from a Secret (its default is generated per pod and written to the
    data volume in clear), and its RAG embedding model from the mirror the site names (it downloads the
    model from the Hugging Face hub at start otherwise)."""
    webui = config["open_webui"]
    env = [
        {
            "name": "WEBUI_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": webui_secret_name(config), "key": WEBUI_SECRET_KEY_KEY}},
        }
    ]
    if webui.get("embedding_model"):
        env.append({"name": "RAG_EMBEDDING_MODEL", "value": webui["embedding_model"]})
    if webui.get("hf_endpoint"):
        env.append({"name": "HF_ENDPOINT", "value": webui["hf_endpoint"]})
    return env


def webui_resources(webui):
    resources = webui.get("resources") or WEBUI_DEFAULT_RESOURCES
    if not isinstance(resources, dict) or not set(resources) <= {"requests", "limits"}:
        raise LlmopsError("inference_exposure_open_webui_resources must be {requests: {...}, limits: {...}}")
    return {key: dict(value) for key, value in resources.items()}


def open_webui(config):
    """Open WebUI talking to our Service with our API key (seed 002's manifests, with the key from the Secret)."""
    webui = config["open_webui"]
    name = "%s-webui" % config["name"]
    base = "http://%s.%s.svc:%d/v1" % (service_name(config), config["namespace"], int(config["service_port"]))
    labels = {"app.kubernetes.io/name": name}
    env = [{"name": "OPENAI_API_BASE_URL", "value": base}, {"name": "ENABLE_OLLAMA_API", "value": "False"}]
    if config.get("api_key_secret"):
        env.append(
            {
                "name": "OPENAI_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": config["api_key_secret"],
                        "key": config.get("api_key_secret_key", "api-key"),
                    }
                },
            }
        )
    env += webui_env(config)
    claim = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "%dGi" % int(webui["storage_gib"])}},
    }
    if webui.get("storage_class"):
        claim["storageClassName"] = webui["storage_class"]
    objects = [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(config, name, "webui"), "spec": claim},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(config, name, "webui"),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "open-webui",
                                "image": webui["image"],
                                "env": env,
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "resources": webui_resources(webui),
                                "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
                                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                                "volumeMounts": [{"name": "data", "mountPath": "/app/backend/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(config, name, "webui"),
            "spec": {
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]
    if config["ingress"] == "ingress" and webui.get("host"):
        webui_tls = dict(config, host=webui["host"], tls_secret=webui.get("tls_secret") or "")
        objects.append(ingress(webui_tls, name, name, 80, paths=("/",)))
    elif config["ingress"] == "route":
        objects.append(route(config, name, name, webui.get("host"), path=None))
    return objects


# Where an Ingress controller / the OpenShift router runs, as a namespace selector.
ROUTER_NAMESPACE_SELECTOR = {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}


def _api_port():
    # The engine container's named port (the Service's targetPort), whatever its number.
    return [{"protocol": "TCP", "port": "http"}]


def network_policy(config):
    """NetworkPolicy of the engine pods: the server's own pods reach each other on every port (NCCL, Ray,
    SGLang's dist-init use many), the API port only from the exposure path.

    The exposure path: the Ingress controller's namespace (``ingress_namespace_selector``) or the OpenShift
    router, Open WebUI's pods, the monitoring namespace (Prometheus scrapes the same port), and
    ``network_policy_from`` (more peers, e.g. the smoke test's namespace). A NodePort / LoadBalancer Service is
    itself the exposure path: its clients come from outside the cluster, so the API port stays open to all.
    Host-network pods are outside NetworkPolicy (the kubelet cannot filter the host's namespace).
    """
    pods = {
        "matchLabels": {"app.kubernetes.io/name": config["name"], "app.kubernetes.io/component": "inference-server"}
    }
    api_port = _api_port()
    rules = [{"from": [{"podSelector": pods}]}]
    if config["service_type"] in ("NodePort", "LoadBalancer"):
        rules.append({"ports": api_port})
    else:
        peers = []
        if config["ingress"] == "ingress":
            peers.append({"namespaceSelector": config.get("ingress_namespace_selector") or {}})
        elif config["ingress"] == "route":
            peers.append({"namespaceSelector": ROUTER_NAMESPACE_SELECTOR})
        if (config.get("open_webui") or {}).get("enabled"):
            peers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "%s-webui" % config["name"]}}})
        if config.get("monitoring_namespace_selector"):
            peers.append({"namespaceSelector": config["monitoring_namespace_selector"]})
        peers += list(config.get("network_policy_from") or [])
        if peers:
            rules.append({"from": peers, "ports": api_port})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(config, config["name"], "inference-server"),
        "spec": {"podSelector": pods, "policyTypes": ["Ingress"], "ingress": rules},
    }


def exposure_manifests(config):
    validate(config)
    objects = [service(config)]
    if config["ingress"] == "ingress":
        objects.append(ingress(config, config["name"], service_name(config), config["service_port"]))
    elif config["ingress"] == "route":
        objects.append(route(config, config["name"], service_name(config), config.get("host")))
    if config.get("service_monitor"):
        objects.append(service_monitor(config))
    if (config.get("open_webui") or {}).get("enabled"):
        objects += open_webui(config)
    if config.get("network_policy", True):
        objects.append(network_policy(config))
    return objects
