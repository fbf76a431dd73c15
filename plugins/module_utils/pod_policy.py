# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pod policy shared by the engine pods and the model cache pods: placement, hardening, QoS, LWS versions.

One place decides where a pod that touches the accelerators may run (the planned accelerator's node
label and the usual taints), how it is hardened (RuntimeDefault seccomp, no privilege escalation, drop
ALL capabilities), what an init container requests (requests = limits, so the pod stays Guaranteed)
and which LeaderWorkerSet fields the installed LWS version has. serving.py and model_cache.py use it,
so the download Jobs land on the same kind of node as the engine they fill.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.llmops.inference.plugins.module_utils import accelerator_catalog
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# gpu-feature-discovery's nvidia.com/gpu.product is nvidia-smi's name with spaces turned into dashes;
# SXM and PCIe boards of one catalog entry differ, so both are accepted (the plan's memory is the same).
GPU_PRODUCTS = {
    "A100-40G": ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"),
    "A100-80G": ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"),
    "A800-80G": ("NVIDIA-A800-SXM4-80GB", "NVIDIA-A800-80GB-PCIe"),
    "H100-80G": ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"),
    "H800-80G": ("NVIDIA-H800", "NVIDIA-H800-PCIe"),
    "H20-96G": ("NVIDIA-H20",),
    "H200-141G": ("NVIDIA-H200", "NVIDIA-H200-NVL"),
    "B200": ("NVIDIA-B200",),
    "L40S": ("NVIDIA-L40S",),
    "L20": ("NVIDIA-L20",),
    "RTX4090": ("NVIDIA-GeForce-RTX-4090",),
    "A10-24G": ("NVIDIA-A10",),
}
# MindCluster (Ascend device plugin) labels the NPU nodes accelerator=huawei-Ascend910 (910A/910B alike).
NPU_NODE_LABEL = ("accelerator", "huawei-Ascend910")
# The taints GPU/NPU node pools usually carry (GPU Operator docs, cloud GPU pools, MindCluster guides).
VENDOR_TOLERATIONS = {
    "nvidia": ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    "huawei": ({"key": "huawei.com/Ascend910", "operator": "Exists", "effect": "NoSchedule"},),
}
# LeaderWorkerSet fields (path inside spec.leaderWorkerTemplate) and the first LWS release that has them.
LWS_FIELD_VERSIONS = {"volumeClaimTemplates": "v0.8.0"}
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# The env var every engine pod gets from the worker-index label (LWS injects LWS_WORKER_INDEX only from
# v0.6.0; the label exists in every release).
WORKER_INDEX_ENV = "LLMOPS_WORKER_INDEX"


def plan_vendor(plan, explicit=""):
    """``nvidia`` or ``huawei``: ``explicit`` when given, else the vendor of the plan's accelerator."""
    if explicit:
        return explicit
    accelerator_id = accelerator_catalog.resolve(((plan or {}).get("accelerator") or {}).get("id"))
    return accelerator_catalog.ACCELERATORS[accelerator_id]["vendor"] if accelerator_id else "nvidia"


def accelerator_node_labels(vendor, plan, override=None):
    """{label: [values]} a node must carry to hold the planned accelerator.

    ``override`` None derives it (nvidia.com/gpu.product for NVIDIA, the MindCluster label for Ascend);
    a dict replaces it ({} turns the selection off). An accelerator the table does not know selects nothing.
    """
    if override is not None:
        if not isinstance(override, dict):
            raise LlmopsError(
                "the accelerator node labels must be a mapping of label to value(s), got %r" % (override,)
            )
        return {str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals])] for k, vals in override.items()}
    if vendor == "huawei":
        return {NPU_NODE_LABEL[0]: [NPU_NODE_LABEL[1]]}
    accelerator_id = accelerator_catalog.resolve(((plan or {}).get("accelerator") or {}).get("id"))
    products = GPU_PRODUCTS.get(accelerator_id)
    return {GPU_PRODUCT_LABEL: list(products)} if products else {}


def accelerator_tolerations(vendor, override=None, extra=None):
    """The vendor's usual taints (or ``override``) followed by the inventory's own tolerations."""
    base = VENDOR_TOLERATIONS.get(vendor, ()) if override is None else override
    if not isinstance(base, (list, tuple)) or not isinstance(extra or [], list):
        raise LlmopsError("tolerations must be lists of Kubernetes tolerations")
    result = []
    for item in list(base) + list(extra or []):
        if item not in result:
            result.append(dict(item))
    return result


def node_affinity(label_values):
    """A required nodeAffinity for {label: [values]} (None when there is nothing to require)."""
    expressions = [
        {"key": label, "operator": "In", "values": list(values)} for label, values in sorted(label_values.items())
    ]
    if not expressions:
        return None
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
    }


def placement(vendor, plan, node_labels=None, tolerations=None, extra_tolerations=None, node_selector=None):
    """{"affinity": {...} or None, "tolerations": [...], "node_selector": {...}} for accelerator pods."""
    labels = accelerator_node_labels(vendor, plan, node_labels)
    selector = dict(node_selector or {})
    # A label the inventory already pins in nodeSelector is not required twice.
    labels = {k: v for k, v in labels.items() if k not in selector}
    affinity = node_affinity(labels)
    return {
        "affinity": {"nodeAffinity": affinity} if affinity else None,
        "tolerations": accelerator_tolerations(vendor, tolerations, extra_tolerations),
        "node_selector": selector,
    }


def pod_security_context():
    """Pod-level hardening every pod of the collection gets."""
    return {"seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context(add=()):
    """No privilege, no escalation, every capability dropped; ``add`` only what is needed (IPC_LOCK for RDMA)."""
    capabilities = {"drop": ["ALL"]}
    if add:
        capabilities["add"] = sorted(set(add))
    return {"privileged": False, "allowPrivilegeEscalation": False, "capabilities": capabilities}


def guaranteed_resources(cpu, memory):
    """requests = limits for cpu and memory: an init container with less would make the pod Burstable."""
    if not cpu or not memory:
        raise LlmopsError("an init container needs both cpu and memory (requests = limits keep the pod Guaranteed)")
    amounts = {"cpu": str(cpu), "memory": str(memory)}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def parse_version(version):
    """(major, minor, patch) of ``v0.8.0`` / ``0.8.0`` / ``v0.8.0-rc.1``."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(version or "").strip())
    if not match:
        raise LlmopsError("not a LeaderWorkerSet version: %r (use e.g. v0.10.0)" % (version,))
    return tuple(int(part or 0) for part in match.groups())


def check_lws_fields(template, version):
    """Refuse a LeaderWorkerSet template field the installed LWS release does not have."""
    have = parse_version(version)
    for field, since in sorted(LWS_FIELD_VERSIONS.items()):
        if field in template and have < parse_version(since):
            raise LlmopsError(
                "LeaderWorkerSet %s has no %s (it exists from %s); the RWO per-pod model cache needs it: "
                "upgrade LWS (leaderworkerset_version), use a ReadWriteMany storage class or model_cache_storage: "
                "host_path with model_cache_stage_nodes" % (version, field, since)
            )
    return template


def worker_index_env():
    """The LWS worker index (0 on the leader) from the pod's label, valid on every LWS release."""
    return {
        "name": WORKER_INDEX_ENV,
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['%s']" % LWS_WORKER_INDEX_LABEL}},
    }
