# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pre-flight checks of playbooks/preflight.yml: everything that can be refused before anything is touched.

Each check returns a list of problems (strings naming the variable and the fix); an empty list means the
input passes. The playbook joins them into one failure, so a person sees every mistake of a run at once.
Pure functions: the inventory's groups, the resolved variables and (in apply mode) the objects read from the
cluster are passed in.
"""

from __future__ import annotations

import difflib
import posixpath
import re

from ansible_collections.llmops.inference.plugins.module_utils import ascend, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# Groups the stages read (docs/conventions.md). An inventory group close to one of these is a misspelling.
KNOWN_GROUPS = ("k8s_control", "gpu_nodes", "npu_nodes")
ENGINES = ("sglang", "vllm")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# hostPath mounts that hand a pod the node itself (its config, the kubelet's or the runtime's state).
HOST_PATH_DENY_EXACT = frozenset(
    [
        "/",
        "/etc",
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/boot",
        "/root",
        "/home",
        "/proc",
        "/sys",
        "/dev",
        "/var",
        "/run",
        "/var/run",
    ]
)
HOST_PATH_DENY_TREES = (
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/etcd",
    "/etc/kubernetes",
    "/run/containerd",
    "/var/run/containerd",
    "/var/run/docker.sock",
    "/run/docker.sock",
)

# Stage roles that act on a host group only when enabled: enabling one with an empty group does nothing silently.
GROUP_OF_ROLE = {
    "nvidia_driver_enabled": "gpu_nodes",
    "fabric_manager_enabled": "gpu_nodes",
    "nvidia_container_toolkit_enabled": "gpu_nodes",
    "doca_ofed_enabled": "gpu_nodes",
    "ascend_driver_enabled": "npu_nodes",
}


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


def check_groups(groups, enabled=None, run_tags=None):
    """Problems with the inventory's groups.

    groups: the ``groups`` magic variable (name -> host list). enabled: the ``<role>_enabled`` values of the
    stage roles that act on host groups. run_tags: ``ansible_run_tags``; a run of only ``prepare`` needs no
    k8s_control.
    """
    if not isinstance(groups, dict):
        raise LlmopsError("groups must be the inventory's groups (name -> hosts), got %s" % type(groups).__name__)
    problems = []
    for name in sorted(groups):
        if name in KNOWN_GROUPS or name in ("all", "ungrouped"):
            continue
        close = difflib.get_close_matches(name.replace("-", "_").lower(), KNOWN_GROUPS, n=1, cutoff=0.75)
        if close:
            problems.append(
                "inventory group '%s' looks like a misspelling of '%s' (the stages only read %s): "
                "rename the group to '%s'" % (name, close[0], ", ".join(KNOWN_GROUPS), close[0])
            )
    tags = set(run_tags or ["all"])
    if not tags <= {"prepare", "preflight"} and not groups.get("k8s_control"):
        problems.append(
            "inventory group 'k8s_control' is missing or empty: add the host that runs the Kubernetes API calls "
            "(usually localhost with ansible_connection: local) under k8s_control in the inventory"
        )
    for switch, group in sorted((enabled or {}).items()):
        wanted = GROUP_OF_ROLE.get(switch)
        if wanted and _truthy(group) and not groups.get(wanted):
            problems.append(
                "%s is true but inventory group '%s' is missing or empty: add the hosts to %s, or set %s: false"
                % (switch, wanted, wanted, switch)
            )
    return problems


def check_hccn_plan(plan, device_count=8, defaults=None):
    """Problems of the NPU address plan (ascend_npu_network_plan) that stage 1 would refuse on every NPU host:
    checked here so the refusal comes before anything is installed."""
    if not plan:
        return []
    try:
        ascend.compute_address_plan(plan, int(device_count), defaults or {})
    except (LlmopsError, TypeError, ValueError) as error:
        return ["ascend_npu_network_plan: %s" % getattr(error, "message", error)]
    return []


def _dns_label(variable, value, problems):
    if not isinstance(value, str) or len(value) > 63 or not DNS1123_LABEL.match(value):
        problems.append(
            "%s=%r is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter "
            "or digit, at most 63 characters): set %s to a name such as 'deepseek-r1'" % (variable, value, variable)
        )


def _int_in(variable, value, low, high, problems, fix):
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError(value)
    except (TypeError, ValueError):
        problems.append("%s=%r is not an integer: %s" % (variable, value, fix))
        return None
    if isinstance(value, bool) or number < low or (high is not None and number > high):
        problems.append("%s=%r is out of range: %s" % (variable, value, fix))
        return None
    return number


def host_path_problem(variable, path):
    """A message when ``path`` must not be mounted from the node, else None."""
    if not isinstance(path, str) or not path.startswith("/"):
        return "%s=%r is not an absolute path: use a folder such as /mnt/models" % (variable, path)
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal in HOST_PATH_DENY_EXACT or any(
        normal == tree or normal.startswith(tree + "/") for tree in HOST_PATH_DENY_TREES
    ):
        return (
            "%s=%r would mount the node's own %s into a pod (denied: %s and anything under %s): use a dedicated "
            "folder such as /mnt/models"
            % (variable, path, normal, ", ".join(sorted(HOST_PATH_DENY_EXACT)), ", ".join(HOST_PATH_DENY_TREES))
        )
    return None


def check_inputs(values, plan=None):
    """Cross-variable problems of the resolved serve-stage variables (``values``: variable name -> value).

    A variable absent from ``values`` is not checked (its stage is not used).
    """
    if not isinstance(values, dict):
        raise LlmopsError("preflight_inputs expects a dict of variable -> value, got %s" % type(values).__name__)
    problems = []
    engine = values.get("llmops_engine")
    if "llmops_engine" in values and engine not in ENGINES:
        hint = (
            " (names are lower case: '%s')" % engine.lower()
            if isinstance(engine, str) and engine.lower() in ENGINES
            else ""
        )
        problems.append(
            "llmops_engine=%r is not an engine this collection serves%s: set llmops_engine to sglang or vllm"
            % (engine, hint)
        )
    server_engine = values.get("inference_server_engine")
    if "inference_server_engine" in values and server_engine not in ENGINES:
        problems.append(
            "inference_server_engine=%r: set it to sglang or vllm (or leave it unset to follow llmops_engine)"
            % (server_engine,)
        )
    if isinstance(plan, dict) and plan.get("engine") and server_engine in ENGINES and plan["engine"] != server_engine:
        problems.append(
            "the plan was computed for engine %s but inference_server_engine is %s: its arguments do not apply; make "
            "llmops_engine, inference_server_engine and the plan (serving_plan_override.engine) agree"
            % (plan["engine"], server_engine)
        )
    for variable in (
        "llmops_namespace",
        "inference_server_namespace",
        "model_cache_namespace",
        "inference_exposure_namespace",
        "inference_server_name",
        "model_cache_name",
        "inference_exposure_name",
    ):
        if variable in values:
            _dns_label(variable, values[variable], problems)
    for variable in ("inference_server_port", "inference_exposure_service_port"):
        if variable in values:
            _int_in(
                variable, values[variable], 1, 65535, problems, "set %s to a TCP port between 1 and 65535" % variable
            )
    if "inference_exposure_node_port" in values:
        _int_in(
            "inference_exposure_node_port",
            values["inference_exposure_node_port"],
            0,
            65535,
            problems,
            "set inference_exposure_node_port to 0 (Kubernetes picks) or a port of the cluster's node port range "
            "(30000-32767 by default)",
        )
    for variable in ("llmops_replicas", "inference_server_replicas"):
        if variable in values:
            _int_in(variable, values[variable], 1, None, problems, "set %s to 1 or more (0 serves nothing)" % variable)
    if values.get("model_cache_storage") == "host_path" and "model_cache_host_path" in values:
        problem = host_path_problem("model_cache_host_path", values["model_cache_host_path"])
        if problem:
            problems.append(problem)
    mounts = values.get("inference_server_host_mounts")
    if mounts is not None:
        if not isinstance(mounts, list):
            problems.append(
                "inference_server_host_mounts must be a list of {host_path, mount_path}: got %r" % (mounts,)
            )
        else:
            for index, mount in enumerate(mounts):
                variable = "inference_server_host_mounts[%d].host_path" % index
                path = mount.get("host_path") if isinstance(mount, dict) else None
                problem = host_path_problem(variable, path)
                if problem:
                    problems.append(problem)
    if "inference_server_api_key_secret" in values:
        secret = values["inference_server_api_key_secret"]
        if secret in ("", None) and not _truthy(values.get("inference_server_allow_unauthenticated", False)):
            problems.append(
                "inference_server_api_key_secret is empty, which serves the API without a key: set it to a Secret name "
                "(default '<server>-api-key'), or set inference_server_allow_unauthenticated: true to serve "
                "without one on purpose"
            )
        elif secret not in ("", None) and (
            not isinstance(secret, str)
            or len(secret) > 253
            or not all(DNS1123_LABEL.match(p) for p in secret.split("."))
        ):
            problems.append(
                "inference_server_api_key_secret=%r is not a valid Secret name (DNS-1123 subdomain): use a name such "
                "as 'deepseek-api-key'" % (secret,)
            )
    return problems


def _quantity(value):
    """An integer count from an allocatable quantity ('8', 8, '1k'); 0 for what is not a count."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    suffixes = {"k": 1000, "M": 10**6, "G": 10**9}
    try:
        if text and text[-1] in suffixes:
            return int(text[:-1]) * suffixes[text[-1]]
        return int(float(text))
    except ValueError:
        return 0


def check_nodes(nodes, plan, accelerator_resource, rdma_resources=None, accelerator_vendor=""):
    """Problems with the cluster's nodes for the plan (apply mode).

    nodes: Node objects (k8s_info's resources). plan: llmops_plan (nodes, accelerators_per_node). A pod of the
    group needs ``accelerators_per_node`` accelerators and ``rdma_resources`` on one node; the group needs
    ``plan.nodes`` such nodes (an LWS of size N places one pod per node).
    """
    if not isinstance(plan, dict):
        raise LlmopsError("llmops_plan is not a plan (a dict from llmops.inference.parallelism_plan): got %r" % (plan,))
    try:
        wanted_nodes = int(plan.get("nodes", 1)) * max(1, int(plan.get("replicas", 1) or 1))
        per_pod = int(
            plan.get("accelerators_per_node") or plan.get("accelerators_used", 0) // max(1, int(plan.get("nodes", 1)))
        )
    except (TypeError, ValueError):
        raise LlmopsError("llmops_plan has non-integer nodes/accelerators_per_node: %r" % (plan,))
    if not accelerator_resource:
        # The server's own default: the vendor's device plugin resource (nvidia.com/gpu, huawei.com/Ascend910).
        vendor = serving.accelerator_vendor({"accelerator_vendor": accelerator_vendor}, plan)
        accelerator_resource = serving.ACCELERATOR_VENDORS[vendor]["resource"]
    rdma = dict(rdma_resources or {})
    fitting, seen = [], []
    for node in nodes or []:
        if not isinstance(node, dict):
            continue
        name = (node.get("metadata") or {}).get("name", "?")
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        unschedulable = (node.get("spec") or {}).get("unschedulable", False)
        have = _quantity(allocatable.get(accelerator_resource, 0))
        lacking = [
            "%s %s of %s" % (allocatable.get(res, 0), res, count)
            for res, count in rdma.items()
            if _quantity(allocatable.get(res, 0)) < _quantity(count)
        ]
        seen.append(
            "%s: %d %s%s%s"
            % (
                name,
                have,
                accelerator_resource,
                "; lacks " + ", ".join(lacking) if lacking else "",
                " (cordoned)" if unschedulable else "",
            )
        )
        if have >= per_pod and not lacking and not unschedulable:
            fitting.append(name)
    if len(fitting) < wanted_nodes:
        return [
            "the plan needs %d node(s) with %d allocatable %s%s each (one pod of the group per node), the cluster "
            "has %d (%s): lower llmops_nodes/llmops_accelerators_per_node to what the nodes offer, or fix the nodes "
            "(device plugin, cordon)"
            % (
                wanted_nodes,
                per_pod,
                accelerator_resource,
                " and " + ", ".join("%s %s" % (v, k) for k, v in sorted(rdma.items())) if rdma else "",
                len(fitting),
                "; ".join(seen) or "no nodes",
            )
        ]
    return []


def check_secret(secret, name, keys, namespace, variable):
    """Problems with a Secret the objects reference: ``secret`` is the k8s_info resource or None."""
    if not secret:
        return [
            "Secret %s/%s (%s) does not exist: create it (kubectl -n %s create secret generic %s "
            "--from-literal=%s=...) or fix %s"
            % (namespace, name, variable, namespace, name, keys[0] if keys else "key", variable)
        ]
    data = dict(secret.get("data") or {})
    data.update(secret.get("stringData") or {})
    missing = [key for key in keys if key not in data]
    if missing:
        return [
            "Secret %s/%s (%s) has no key %s (it has %s): add the key or point %s at the right Secret"
            % (namespace, name, variable, ", ".join(missing), ", ".join(sorted(data)) or "none", variable)
        ]
    return []


def _version_tuple(text):
    numbers = re.findall(r"\d+", str(text or ""))
    return tuple(int(n) for n in numbers[:3]) if numbers else None


def check_version(component, installed, minimum, variable):
    """Problems when an installed add-on is older than what the objects use (``installed`` an image tag or '')."""
    have = _version_tuple(installed)
    need = _version_tuple(minimum)
    if not installed:
        return [
            "%s is not installed in the cluster (no controller found): enable its add-on (%s) or install it first"
            % (component, variable)
        ]
    if have is not None and need is not None and have < need:
        return [
            "%s %s is installed, the objects need %s or newer: upgrade it (%s) or set the version the cluster runs"
            % (component, installed, minimum, variable)
        ]
    return []


# parallelism_plan's arguments and the variables of the serving_plan role that set them.
PLAN_VARIABLES = (
    ("accelerators_per_node", "llmops_accelerators_per_node"),
    ("accelerator_memory_gib", "llmops_accelerator_memory_gib"),
    ("memory_fraction", "serving_plan_memory_fraction"),
    ("context_length", "serving_plan_context_length"),
    ("weight_dtype", "serving_plan_weight_dtype"),
    ("kv_cache_dtype", "serving_plan_kv_cache_dtype"),
    ("model_path", "serving_plan_model_path"),
    ("tensor_parallel", "serving_plan_overrides.tensor_parallel"),
    ("pipeline_parallel", "serving_plan_overrides.pipeline_parallel"),
    ("data_parallel", "serving_plan_overrides.data_parallel"),
    ("expert_parallel", "serving_plan_overrides.expert_parallel"),
    ("attention_data_parallel", "serving_plan_overrides.attention_data_parallel"),
    ("intra_node_link", "llmops_intra_node_link"),
    ("inter_node_link", "llmops_inter_node_link"),
    ("nodes", "llmops_nodes"),
    ("unknown model", "llmops_model_id"),
    ("unknown accelerator", "llmops_accelerator"),
    ("config of", "serving_plan_model_path"),
)


def plan_message(message):
    """The planner's refusal with the inventory variable next to each argument it names, and the fix."""
    text = str(message or "the planner failed without a message")
    named = []
    for argument, variable in PLAN_VARIABLES:
        pattern = re.compile(r"(?<![\w.])%s\b" % re.escape(argument))
        if variable not in named and pattern.search(text):
            text = pattern.sub(lambda found, name=variable: "%s (%s)" % (found.group(0), name), text, count=1)
            named.append(variable)
    if not named:
        named = ["llmops_model_id", "llmops_nodes", "llmops_accelerators_per_node", "llmops_accelerator"]
    return "The parallelism plan was refused: %s. Fix %s in the inventory or -e (docs/parallelism_plan.md)." % (
        text.rstrip("."),
        ", ".join(named),
    )
