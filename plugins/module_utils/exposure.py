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


def validate(config):
    if config.get("ingress") not in INGRESS_KINDS:
        raise LlmopsError(
            "inference_exposure_ingress must be one of %s, got %r" % (", ".join(INGRESS_KINDS), config.get("ingress"))
        )
    if config.get("service_type") not in SERVICE_TYPES:
        raise LlmopsError("inference_exposure_service_type must be one of %s" % ", ".join(SERVICE_TYPES))
    if config["ingress"] == "ingress" and not config.get("host"):
        raise LlmopsError("an Ingress needs inference_exposure_host (the DNS name clients use)")
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
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(config, service_name(config), "inference-server"),
        "spec": spec,
    }


def ingress(config, name, service_name, port):
    annotations = dict(config.get("ingress_annotations") or {})
    spec = {
        "rules": [
            {
                "host": config["host"],
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": service_name, "port": {"number": int(port)}}},
                        }
                    ]
                },
            }
        ]
    }
    if config.get("ingress_class"):
        spec["ingressClassName"] = config["ingress_class"]
    if config.get("tls_secret"):
        spec["tls"] = [{"hosts": [config["host"]], "secretName": config["tls_secret"]}]
    meta = _meta(config, name, "exposure")
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def route(config, name, service_name, host):
    spec = {
        "to": {"kind": "Service", "name": service_name, "weight": 100},
        "port": {"targetPort": "http"},
        "tls": {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"},
        "wildcardPolicy": "None",
    }
    if host:
        spec["host"] = host
    meta = _meta(config, name, "exposure")
    # Long generations stream for minutes; the router's 30 s default would cut them.
    meta["annotations"] = {"haproxy.router.openshift.io/timeout": config.get("route_timeout", "10m")}
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
        objects.append(ingress(dict(config, host=webui["host"]), name, name, 80))
    elif config["ingress"] == "route":
        objects.append(route(config, name, name, webui.get("host")))
    return objects


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
    return objects
