# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing across replicas with the Gateway API Inference Extension: an InferencePool over the server's API
pods, its endpoint picker (EPP: prefix-cache, KV-cache and queue aware), InferenceObjectives, and a Gateway +
HTTPRoute of the chosen Gateway implementation.

The objects follow the upstream inferencepool Helm chart of gateway-api-inference-extension v1.5.0
(config/charts/inferencepool, epplib): the same EPP flags, ports, probes, RBAC and plugin configuration.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.llmops.inference.plugins.module_utils import exposure, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

POOL_API_VERSION = "inference.networking.k8s.io/v1"
POOL_GROUP = "inference.networking.k8s.io"
OBJECTIVE_API_VERSION = "inference.networking.x-k8s.io/v1alpha2"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
ISTIO_API_VERSION = "networking.istio.io/v1"
EPP_GRPC_PORT = 9002
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
FAILURE_MODES = ("FailOpen", "FailClose")
# Gateway implementations and the GatewayClass each installs by default; "istio" also needs a DestinationRule
# so its Envoy speaks TLS to the EPP (whose ext-proc server is TLS with a self-signed certificate).
IMPLEMENTATIONS = {
    "kgateway": "kgateway",
    "istio": "istio",
    "envoy-gateway": "envoy-gateway",
    "gke": "gke-l7-regional-external-managed",
}
# Engines whose metric names the EPP's core-metrics-extractor knows (v1.5.0 datalayer/extractor/metrics:
# defaultEngine vllm or sglang; the older --*-metric flags are deprecated there).
ENGINES = ("sglang", "vllm")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def epp_name(config):
    return "%s-epp" % config["name"]


def _meta(config, name, component="routing"):
    return {
        "name": name,
        "namespace": config["namespace"],
        "labels": {
            "app.kubernetes.io/name": config["name"],
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "llmops.inference",
        },
    }


def _epp_selector(config):
    return {"app.kubernetes.io/name": config["name"], "app.kubernetes.io/component": "endpoint-picker"}


def validate(config):
    if config.get("engine") not in ENGINES:
        raise LlmopsError("the endpoint picker knows sglang and vllm, not %r" % config.get("engine"))
    implementation = config.get("implementation")
    if implementation not in IMPLEMENTATIONS:
        raise LlmopsError(
            "inference_routing_gateway_implementation must be one of %s, got %r"
            % (", ".join(sorted(IMPLEMENTATIONS)), implementation)
        )
    if config.get("failure_mode", "FailOpen") not in FAILURE_MODES:
        raise LlmopsError("inference_routing_failure_mode must be FailOpen or FailClose")
    if not config.get("epp_image"):
        raise LlmopsError("inference_routing_epp_image is empty: name the endpoint picker image (or its mirror)")
    for objective in config.get("objectives") or []:
        if not isinstance(objective, dict) or not _DNS_LABEL.match(str(objective.get("name", ""))):
            raise LlmopsError("inference_routing_objectives item %r needs a name that is a DNS label" % (objective,))
        if not isinstance(objective.get("priority", 0), int):
            raise LlmopsError("inference_routing_objectives %s: priority must be an integer" % objective["name"])
    port = int(config.get("port") or 0)
    if not 0 < port < 65536:
        raise LlmopsError("the engine API port %r is not a port" % config.get("port"))
    return config


def endpoint_picker_config(config):
    """The EPP's EndpointPickerConfig (the chart's default-plugins.yaml): queue, KV-cache and prefix-cache
    scorers over the pool's pods, with the engine's metric names."""
    extractor = {"type": "core-metrics-extractor"}
    if config["engine"] != "vllm":
        extractor["parameters"] = {"defaultEngine": config["engine"]}
    weights = config.get("scorer_weights") or {}
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {"type": "prefix-cache-scorer"},
            {
                "type": "metrics-data-source",
                "parameters": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True},
            },
            extractor,
        ],
        "schedulingProfiles": [
            {
                "name": "default",
                "plugins": [
                    {"pluginRef": "queue-scorer", "weight": int(weights.get("queue", 2))},
                    {"pluginRef": "kv-cache-utilization-scorer", "weight": int(weights.get("kv_cache", 2))},
                    {"pluginRef": "prefix-cache-scorer", "weight": int(weights.get("prefix_cache", 3))},
                ],
            }
        ],
    }


def epp_objects(config):
    """ServiceAccount, Role + RoleBinding (pods, InferencePools, InferenceObjectives), the plugin ConfigMap,
    the EPP Deployment and its Service."""
    name = epp_name(config)
    labels = _epp_selector(config)
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(config, name, "endpoint-picker")}
    account["automountServiceAccountToken"] = True  # the EPP watches pods and pools through the API
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(config, name, "endpoint-picker"),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
            {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": ["get", "watch", "list"]},
            {
                "apiGroups": ["inference.networking.x-k8s.io"],
                "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                "verbs": ["get", "watch", "list"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(config, name, "endpoint-picker"),
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": config["namespace"]}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(config, name, "endpoint-picker"),
        # JSON is YAML: the EPP reads the file with a YAML parser, and the managed host needs no PyYAML.
        "data": {"default-plugins.yaml": json.dumps(endpoint_picker_config(config), indent=2) + "\n"},
    }
    args = [
        "--pool-name",
        config["name"],
        "--pool-namespace",
        config["namespace"],
        "--pool-group",
        POOL_GROUP,
    ]
    args += ["--zap-encoder", "json", "--config-file", "/config/default-plugins.yaml", "--tracing=false"]
    args += ["--v", str(int(config.get("log_level", 1)))]
    args += list(config.get("epp_extra_args") or [])
    container = {
        "name": "epp",
        "image": config["epp_image"],
        "imagePullPolicy": config.get("image_pull_policy") or "IfNotPresent",
        "args": args,
        "ports": [
            {"name": "grpc", "containerPort": EPP_GRPC_PORT},
            {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT},
            {"name": "metrics", "containerPort": EPP_METRICS_PORT},
        ],
        "livenessProbe": {
            "grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        "readinessProbe": {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}, "periodSeconds": 2},
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": config.get("epp_resources")
        or {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"name": "plugins-config", "mountPath": "/config", "readOnly": True}],
    }
    pod = {
        "serviceAccountName": name,
        "terminationGracePeriodSeconds": 130,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True},
        "containers": [container],
        "volumes": [{"name": "plugins-config", "configMap": {"name": name}}],
    }
    if config.get("node_selector"):
        pod["nodeSelector"] = dict(config["node_selector"])
    if config.get("tolerations"):
        pod["tolerations"] = list(config["tolerations"])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(config, name, "endpoint-picker"),
        "spec": {
            # One active picker: its prefix-cache index lives in memory (the chart's recommendation).
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(config, name, "endpoint-picker"),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(labels),
            "ports": [
                {"name": "grpc-ext-proc", "protocol": "TCP", "port": EPP_GRPC_PORT, "appProtocol": "http2"},
                {"name": "http-metrics", "protocol": "TCP", "port": EPP_METRICS_PORT},
            ],
        },
    }
    return [account, role, binding, config_map, deployment, service]


def inference_pool(config):
    """The pool: the pods that answer the API (single pods or LWS leaders) on the engine port."""
    spec = {
        "selector": {"matchLabels": serving.leader_selector(config)},
        "targetPorts": [{"number": int(config["port"])}],
        "appProtocol": "http",
        "endpointPickerRef": {
            "name": epp_name(config),
            "port": {"number": EPP_GRPC_PORT},
            "failureMode": config.get("failure_mode") or "FailOpen",
        },
    }
    return {
        "apiVersion": POOL_API_VERSION,
        "kind": "InferencePool",
        "metadata": _meta(config, config["name"]),
        "spec": spec,
    }


def inference_objectives(config):
    objects = []
    for objective in config.get("objectives") or []:
        objects.append(
            {
                "apiVersion": OBJECTIVE_API_VERSION,
                "kind": "InferenceObjective",
                "metadata": _meta(config, objective["name"]),
                "spec": {
                    "priority": int(objective.get("priority", 0)),
                    "poolRef": {"group": POOL_GROUP, "kind": "InferencePool", "name": config["name"]},
                },
            }
        )
    return objects


def gateway_name(config):
    return config.get("gateway_name") or "%s-gateway" % config["name"]


def gateway(config):
    """Our own Gateway of the chosen implementation (when no existing Gateway is named)."""
    listeners = [{"name": "http", "protocol": "HTTP", "port": int(config.get("gateway_port") or 80)}]
    if config.get("tls_secret"):
        listeners.append(
            {
                "name": "https",
                "protocol": "HTTPS",
                "port": int(config.get("gateway_tls_port") or 443),
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": config["tls_secret"]}]},
            }
        )
    if config.get("host"):
        for listener in listeners:
            listener["hostname"] = config["host"]
    spec = {
        "gatewayClassName": config.get("gateway_class") or IMPLEMENTATIONS[config["implementation"]],
        "listeners": listeners,
    }
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "Gateway",
        "metadata": _meta(config, gateway_name(config)),
        "spec": spec,
    }


def http_route(config):
    """/v1 only (exposure.API_PATHS, as the Ingress and Route): the engine's API key guards /v1 on both engines,
    so nothing the key leaves open (vLLM's /invocations and /metrics, SGLang's /metrics) is on the gateway."""
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway_name(config)}
    if config.get("gateway_namespace"):
        parent["namespace"] = config["gateway_namespace"]
    rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": path}} for path in exposure.API_PATHS],
        "backendRefs": [{"group": POOL_GROUP, "kind": "InferencePool", "name": config["name"]}],
    }
    if config["implementation"] != "gke":  # GKE's gateway rejects HTTPRoute timeouts (the chart omits them)
        rule["timeouts"] = {"request": config.get("request_timeout") or "3600s"}
    spec = {"parentRefs": [parent], "rules": [rule]}
    if config.get("host"):
        spec["hostnames"] = [config["host"]]
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": _meta(config, config["name"]),
        "spec": spec,
    }


def istio_destination_rule(config):
    host = "%s.%s.svc.cluster.local" % (epp_name(config), config["namespace"])
    return {
        "apiVersion": ISTIO_API_VERSION,
        "kind": "DestinationRule",
        "metadata": _meta(config, epp_name(config)),
        "spec": {"host": host, "trafficPolicy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}}},
    }


def routing_manifests(config):
    """Every routing object in apply order: EPP (RBAC, config, Deployment, Service), InferencePool,
    InferenceObjectives, [DestinationRule], [Gateway], HTTPRoute."""
    config = validate(dict(config))
    objects = epp_objects(config) + [inference_pool(config)] + inference_objectives(config)
    if config["implementation"] == "istio":
        objects.append(istio_destination_rule(config))
    if not config.get("gateway_name"):
        objects.append(gateway(config))
    objects.append(http_route(config))
    return objects
