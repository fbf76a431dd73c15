# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OpenShift AI operator stack through OLM, and its DSCInitialization / DataScienceCluster.

Seed 000 installs, in order, the NFD Operator, the NVIDIA GPU Operator, (Elasticsearch, Kiali, Jaeger,)
Service Mesh, Serverless, then the Red Hat OpenShift AI operator (``rhods-operator``), and creates a
DSCInitialization and a DataScienceCluster with KServe in RawDeployment mode. Here each operator is a
Namespace, an OperatorGroup (unless the namespace already has one, such as openshift-operators) and a
Subscription (operators.coreos.com/v1alpha1); channel, startingCSV, catalog source and install plan
approval are the caller's, validated here. The DSCI and DSC use the storage version v2 of the
opendatahub-operator 3.x CRDs (../shared/crds/opendatahub-operator): in v2 KServe has no
``defaultDeploymentMode`` field any more, RawDeployment is the only mode, and serverless/service mesh
settings are gone from the DSC.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SUBSCRIPTION_API_VERSION = "operators.coreos.com/v1alpha1"
OPERATOR_GROUP_API_VERSION = "operators.coreos.com/v1"
DSCI_API_VERSION = "dscinitialization.opendatahub.io/v2"
DSC_API_VERSION = "datasciencecluster.opendatahub.io/v2"
APPROVALS = ("Automatic", "Manual")
MANAGEMENT_STATES = ("Managed", "Removed")
# DataScienceCluster v2 components (api/datasciencecluster/v2 at opendatahub-operator v3.5.0).
DSC_COMPONENTS = (
    "aigateway",
    "aipipelines",
    "dashboard",
    "feastoperator",
    "kserve",
    "kueue",
    "llamastackoperator",
    "mcplifecycleoperator",
    "mlflowoperator",
    "modelregistry",
    "ogx",
    "ray",
    "sparkoperator",
    "trainer",
    "trainingoperator",
    "trustyai",
    "workbenches",
)
RAW_SERVICE_CONFIGS = ("Headless", "Headed")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_OPERATOR_KEYS = frozenset(
    (
        "enabled",
        "package",
        "namespace",
        "channel",
        "starting_csv",
        "source",
        "source_namespace",
        "install_plan_approval",
        "operator_group",
        "target_namespaces",
        "config",
    )
)


def _string(value, what, allow_empty=False):
    """Accept only real strings: YAML turns an unquoted channel such as 2.16 into a float."""
    if not isinstance(value, str):
        if isinstance(value, bool) or value is None:
            kind = repr(value)
        elif isinstance(value, (int, float)):
            kind = "the number %s" % value
        else:
            kind = "a %s" % type(value).__name__.lstrip("_")
        raise LlmopsError("%s must be a string, got %s; quote it in YAML (e.g. '%s')" % (what, kind, value))
    if not allow_empty and not value.strip():
        raise LlmopsError("%s is empty" % what)
    return value


def validate_operator(key, operator, defaults=None):
    """One operator entry with the shared defaults (source namespace, approval) applied and checked."""
    if not isinstance(operator, dict):
        raise LlmopsError("operator %s must be a dict (package, namespace, channel, source, ...)" % key)
    unknown = sorted(set(operator) - _OPERATOR_KEYS)
    if unknown:
        raise LlmopsError(
            "operator %s: unknown settings %s (known: %s)"
            % (key, ", ".join(unknown), ", ".join(sorted(_OPERATOR_KEYS)))
        )
    merged = dict(defaults or {})
    merged.update(operator)
    for field in ("package", "namespace", "channel", "source", "source_namespace"):
        _string(merged.get(field), "operator %s: %s" % (key, field))
    _string(merged.get("starting_csv", ""), "operator %s: starting_csv" % key, allow_empty=True)
    if not _DNS_LABEL.match(merged["namespace"]):
        raise LlmopsError("operator %s: namespace %r is not a DNS label" % (key, merged["namespace"]))
    approval = merged.get("install_plan_approval", "Automatic")
    if approval not in APPROVALS:
        raise LlmopsError(
            "operator %s: install_plan_approval %r must be one of %s" % (key, approval, ", ".join(APPROVALS))
        )
    merged["install_plan_approval"] = approval
    if approval == "Manual" and not merged.get("starting_csv"):
        raise LlmopsError(
            "operator %s: Manual install plan approval needs starting_csv, so only that exact version is approved" % key
        )
    targets = merged.get("target_namespaces")
    if targets not in (None, "own", "all") and not (
        isinstance(targets, list) and all(isinstance(name, str) for name in targets)
    ):
        raise LlmopsError(
            "operator %s: target_namespaces must be 'own', 'all' or a list of namespaces, got %r" % (key, targets)
        )
    merged["operator_group"] = bool(merged.get("operator_group", True))
    return merged


def enabled_operators(operators, order, defaults=None):
    """The enabled operators, validated, in ``order`` (install order matters: NFD before the GPU Operator)."""
    if not isinstance(operators, dict):
        raise LlmopsError("openshift_ai_operators must be a dict of operator name -> settings")
    missing = [key for key in order if key not in operators]
    if missing:
        raise LlmopsError("openshift_ai_operator_order names operators that are not defined: %s" % ", ".join(missing))
    rest = sorted(key for key in operators if key not in order)
    result = []
    for key in list(order) + rest:
        operator = operators[key]
        if isinstance(operator, dict) and not operator.get("enabled", True):
            continue
        result.append(dict(validate_operator(key, operator, defaults), key=key))
    return result


def _labels():
    return {"app.kubernetes.io/managed-by": "llmops.inference", "app.kubernetes.io/part-of": "openshift-ai"}


def operator_manifests(operators):
    """Namespace, OperatorGroup, Subscription per operator, in install order (one namespace made once)."""
    objects, namespaces, groups = [], set(), set()
    for operator in operators:
        namespace = operator["namespace"]
        # operator_group false means the cluster's own operator namespace (openshift-operators): it exists.
        if operator["operator_group"] and namespace not in namespaces:
            namespaces.add(namespace)
            objects.append(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": _labels()}}
            )
        if operator["operator_group"] and namespace not in groups:
            groups.add(namespace)
            targets = operator.get("target_namespaces")
            spec = {}
            if targets in (None, "own"):
                spec["targetNamespaces"] = [namespace]
            elif isinstance(targets, list):
                spec["targetNamespaces"] = list(targets)
            objects.append(
                {
                    "apiVersion": OPERATOR_GROUP_API_VERSION,
                    "kind": "OperatorGroup",
                    "metadata": {"name": namespace, "namespace": namespace, "labels": _labels()},
                    "spec": spec,
                }
            )
        spec = {
            "name": operator["package"],
            "channel": operator["channel"],
            "source": operator["source"],
            "sourceNamespace": operator["source_namespace"],
            "installPlanApproval": operator["install_plan_approval"],
        }
        if operator.get("starting_csv"):
            spec["startingCSV"] = operator["starting_csv"]
        if operator.get("config"):
            spec["config"] = operator["config"]
        objects.append(
            {
                "apiVersion": SUBSCRIPTION_API_VERSION,
                "kind": "Subscription",
                "metadata": {"name": operator["package"], "namespace": namespace, "labels": _labels()},
                "spec": spec,
            }
        )
    return objects


def _state(value, what):
    if value not in MANAGEMENT_STATES:
        raise LlmopsError("%s must be one of %s, got %r" % (what, ", ".join(MANAGEMENT_STATES), value))
    return value


def dsci_manifest(settings):
    """DSCInitialization v2: the applications namespace, monitoring and the trusted CA bundle."""
    name = _string(settings.get("name", "default-dsci"), "DSCInitialization name")
    applications = _string(settings.get("applications_namespace"), "applications namespace")
    spec = {
        "applicationsNamespace": applications,
        "trustedCABundle": {
            "managementState": _string(settings.get("trusted_ca_bundle_state", "Managed"), "trusted CA bundle state"),
            "customCABundle": _string(settings.get("custom_ca_bundle", ""), "custom CA bundle", allow_empty=True),
        },
    }
    if spec["trustedCABundle"]["managementState"] not in MANAGEMENT_STATES + ("Unmanaged",):
        raise LlmopsError("trusted CA bundle state must be Managed, Removed or Unmanaged")
    monitoring = settings.get("monitoring_namespace")
    if monitoring:
        spec["monitoring"] = {
            "managementState": _state(settings.get("monitoring_state", "Managed"), "monitoring state"),
            "namespace": _string(monitoring, "monitoring namespace"),
        }
    return {
        "apiVersion": DSCI_API_VERSION,
        "kind": "DSCInitialization",
        "metadata": {"name": name, "labels": _labels()},
        "spec": spec,
    }


def dsc_manifest(settings):
    """DataScienceCluster v2 with KServe Managed (RawDeployment) and the other components as given.

    ``components`` maps a component name to a management state ("Managed"/"Removed") or to the
    component's full v2 settings (a dict with managementState).
    """
    components = settings.get("components") or {}
    if not isinstance(components, dict):
        raise LlmopsError("DataScienceCluster components must be a dict of component -> state or settings")
    unknown = sorted(set(components) - set(DSC_COMPONENTS))
    if unknown:
        raise LlmopsError(
            "unknown DataScienceCluster v2 components %s (known: %s); v1 names such as codeflare, "
            "datasciencepipelines and modelmeshserving are gone in v2" % (", ".join(unknown), ", ".join(DSC_COMPONENTS))
        )
    spec = {}
    for name in sorted(components):
        value = components[name]
        entry = dict(value) if isinstance(value, dict) else {"managementState": value}
        _state(entry.get("managementState"), "DataScienceCluster component %s managementState" % name)
        spec[name] = entry
    kserve = dict(spec.get("kserve") or {})
    kserve["managementState"] = "Managed"
    raw = settings.get("kserve_raw_service_config") or kserve.get("rawDeploymentServiceConfig") or "Headless"
    if raw not in RAW_SERVICE_CONFIGS:
        raise LlmopsError("KServe rawDeploymentServiceConfig must be Headless or Headed, got %r" % raw)
    kserve["rawDeploymentServiceConfig"] = raw
    spec["kserve"] = kserve
    return {
        "apiVersion": DSC_API_VERSION,
        "kind": "DataScienceCluster",
        "metadata": {
            "name": _string(settings.get("name", "default-dsc"), "DataScienceCluster name"),
            "labels": _labels(),
        },
        "spec": {"components": spec},
    }


def stack_manifests(operators, order, defaults, dsci, dsc):
    """Everything the role applies, computed (and validated) before anything is applied."""
    enabled = enabled_operators(operators, order, defaults)
    return {
        "operators": enabled,
        "subscriptions": operator_manifests(enabled),
        "dsci": dsci_manifest(dsci),
        "dsc": dsc_manifest(dsc),
    }


def alm_example(csv, instance):
    """The example object of ``instance["kind"]`` from a CSV's alm-examples annotation (how the console creates
    an operator's first instance, e.g. the GPU Operator's ClusterPolicy); namespaced kinds go to the
    operator's namespace (``instance["namespace"]``)."""
    kind = instance.get("kind") if isinstance(instance, dict) else None
    if not kind:
        raise LlmopsError("an operator instance needs a kind, got %r" % (instance,))
    raw = ((csv.get("metadata") or {}).get("annotations") or {}).get("alm-examples") or "[]"
    try:
        examples = json.loads(raw)
    except ValueError:
        raise LlmopsError("the CSV's alm-examples annotation is not JSON")
    for example in examples:
        if isinstance(example, dict) and example.get("kind") == kind:
            example = dict(example, metadata=dict(example.get("metadata") or {}))
            example["metadata"].pop("namespace", None)
            if instance.get("namespaced"):
                example["metadata"]["namespace"] = instance["namespace"]
            return example
    raise LlmopsError(
        "CSV %s has no %s example (it has: %s)"
        % (
            (csv.get("metadata") or {}).get("name"),
            kind,
            ", ".join(sorted({e.get("kind", "?") for e in examples if isinstance(e, dict)})) or "none",
        )
    )
