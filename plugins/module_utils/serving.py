# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes objects for an OpenAI-compatible SGLang or vLLM server, built from the parallelism plan.

One code path serves both engines and both shapes: a single-node Deployment (or StatefulSet when
every pod needs its own model cache) and a multi-node LeaderWorkerSet. Parallelism is never derived
here: the flags come from ``plan["engine_args"]`` (``llmops_plan``, the parallelism_plan module's
return); this file only adds what depends on the pod (model path, name, port, node rank, API key).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

from ansible_collections.llmops.inference.plugins.module_utils import accelerator_catalog
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

ENGINES = ("sglang", "vllm")
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
PODGROUP_API_VERSION = "scheduling.volcano.sh/v1beta1"
VOLCANO_GROUP_ANNOTATION = "scheduling.k8s.io/group-name"
LWS_EXCLUSIVE_TOPOLOGY_ANNOTATION = "leaderworkerset.sigs.k8s.io/exclusive-topology"
API_KEY_ENV = "LLMOPS_API_KEY"
# vLLM reads its API key from this variable (vllm/envs.py), so the key never reaches argv.
VLLM_API_KEY_ENV = "VLLM_API_KEY"
# SGLang has no env variable for the key (0.5.6.post2 to 0.5.23: only --api-key): the leader writes it into
# a --config YAML file on its memory-backed /dev/shm at start (see api_key_script).
SGLANG_API_KEY_FILE = "/dev/shm/llmops-api-key.yaml"
# vLLM's default --data-parallel-rpc-port (vllm/config/parallel.py data_parallel_rpc_port)
DP_RPC_PORT = 29550
REQUIRED_PLAN_KEYS = ("fits", "tensor_parallel", "pipeline_parallel", "nodes", "accelerators_used", "engine_args")

# Flags that set parallelism or the node layout; they come from the plan only (never from extra args),
# so a plan override always goes through parallelism_plan's validation.
PARALLELISM_FLAGS = frozenset(
    (
        "--tp",
        "--tp-size",
        "--tensor-parallel-size",
        "-tp",
        "--pp",
        "--pp-size",
        "--pipeline-parallel-size",
        "-pp",
        "--dp",
        "--dp-size",
        "--data-parallel-size",
        "-dp",
        "--ep",
        "--ep-size",
        "--expert-parallel-size",
        "--enable-expert-parallel",
        "--nnodes",
        "--node-rank",
        "--dist-init-addr",
        "--distributed-executor-backend",
    )
)
# Flags the role itself sets from its own variables.
ROLE_FLAGS = frozenset(("--model-path", "--model", "--served-model-name", "--host", "--port", "--api-key"))

# What the pod spec needs per accelerator vendor. The Ascend device plugin (MindCluster ascend-device-plugin)
# injects /dev/davinci<N>, /dev/davinci_manager, /dev/devmm_svm and /dev/hisi_hdc for huawei.com/Ascend910,
# but not the driver's user-space libraries and tools: those come from the host, as in seed 003's MindIE
# `docker run` (-v /usr/local/Ascend/driver, /usr/local/dcmi, npu-smi, /etc/hccn.conf, /var/log/npu:/usr/slog)
# and vllm-ascend's container guide (/usr/local/bin/npu-smi, /etc/ascend_install.info).
ASCEND_HOST_MOUNTS = (
    {"host_path": "/usr/local/Ascend/driver", "type": "Directory"},
    {"host_path": "/usr/local/dcmi", "type": "Directory"},
    {"host_path": "/usr/local/bin/npu-smi", "type": "File"},
    {"host_path": "/etc/ascend_install.info", "type": "File"},
    {"host_path": "/etc/hccn.conf", "type": "File"},
    {"host_path": "/var/log/npu", "mount_path": "/usr/slog", "type": "DirectoryOrCreate", "read_only": False},
)
ACCELERATOR_VENDORS = {
    "nvidia": {"resource": "nvidia.com/gpu", "host_mounts": ()},
    "huawei": {"resource": "huawei.com/Ascend910", "host_mounts": ASCEND_HOST_MOUNTS},
}
HOST_PATH_TYPES = ("", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket", "CharDevice")

# Per engine: how the server starts and how each option maps to flags. None means "engine default".
ENGINE_TRAITS = {
    "sglang": {
        "launch": ["python3", "-m", "sglang.launch_server", "--model-path", "{model_path}"],
        "prefix_caching_off": ["--disable-radix-cache"],
        "prefix_caching_on": [],  # RadixAttention is on by default
        "chunked_prefill_off": ["--chunked-prefill-size", "-1"],
        "chunked_prefill_on": [],
        "chunked_prefill_size": "--chunked-prefill-size",
        "metrics": ["--enable-metrics"],
        "tool_call_extra": [],
    },
    "vllm": {
        "launch": ["vllm", "serve", "{model_path}"],
        "prefix_caching_off": ["--no-enable-prefix-caching"],
        "prefix_caching_on": ["--enable-prefix-caching"],
        "chunked_prefill_off": ["--no-enable-chunked-prefill"],
        "chunked_prefill_on": ["--enable-chunked-prefill"],
        "chunked_prefill_size": "--max-num-batched-tokens",
        "metrics": [],  # /metrics is always served
        "tool_call_extra": ["--enable-auto-tool-choice"],
    },
}

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_QUANTITY_FACTORS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
}
_ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def quantity_bytes(quantity):
    """Bytes of a Kubernetes memory quantity such as ``1Ti`` or ``512Gi``."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise LlmopsError("not a Kubernetes memory quantity: %r (use e.g. 512Gi)" % (quantity,))
    return int(float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)])


def validate_plan(plan):
    """Check that ``plan`` is a usable parallelism_plan result and return it."""
    if not isinstance(plan, dict):
        raise LlmopsError("llmops_plan is not set: run the plan stage (llmops.inference.parallelism_plan) first")
    missing = [key for key in REQUIRED_PLAN_KEYS if key not in plan]
    if missing:
        raise LlmopsError(
            "llmops_plan lacks %s; it must be the parallelism_plan module's 'plan' return" % ", ".join(missing)
        )
    if not plan["fits"]:
        raise LlmopsError("the parallelism plan does not fit: %s" % "; ".join(plan.get("reasons") or ["no reason"]))
    nodes = int(plan["nodes"])
    used = int(plan["accelerators_used"])
    if nodes < 1 or used < nodes or used % nodes:
        raise LlmopsError("plan uses %d accelerators on %d nodes; that does not split evenly per node" % (used, nodes))
    if not isinstance(plan["engine_args"], list) or not all(isinstance(arg, str) for arg in plan["engine_args"]):
        raise LlmopsError("plan engine_args must be a list of strings, got %r" % (plan["engine_args"],))
    return plan


def accelerators_per_pod(plan):
    return int(plan["accelerators_used"]) // int(plan["nodes"])


def accelerator_vendor(config, plan):
    """``nvidia`` or ``huawei``: the config's explicit choice, else the vendor of the plan's accelerator."""
    vendor = config.get("accelerator_vendor") or ""
    if not vendor:
        accelerator_id = accelerator_catalog.resolve((plan.get("accelerator") or {}).get("id"))
        vendor = accelerator_catalog.ACCELERATORS[accelerator_id]["vendor"] if accelerator_id else "nvidia"
    if vendor not in ACCELERATOR_VENDORS:
        raise LlmopsError(
            "unknown accelerator vendor %r: choose one of %s" % (vendor, ", ".join(sorted(ACCELERATOR_VENDORS)))
        )
    return vendor


def _host_mounts(mounts):
    checked = []
    for mount in mounts:
        if not isinstance(mount, dict) or not str(mount.get("host_path", "")).startswith("/"):
            raise LlmopsError("host mount %r needs host_path, an absolute path on the node" % (mount,))
        if mount.get("type", "") not in HOST_PATH_TYPES:
            raise LlmopsError(
                "host mount %s: type %r is not one of %s"
                % (mount["host_path"], mount["type"], ", ".join(HOST_PATH_TYPES))
            )
        checked.append(dict(mount))
    return checked


def resolve_accelerator(config, plan):
    """Fill what the accelerator vendor decides: resource name, image (when not given), host mounts.

    ``config["images"]`` maps vendor -> engine -> image; an explicit ``image`` wins. ``host_mounts`` None
    means the vendor's defaults (ASCEND_HOST_MOUNTS on Ascend), a list replaces them.
    """
    vendor = accelerator_vendor(config, plan)
    traits = ACCELERATOR_VENDORS[vendor]
    resolved = dict(config, accelerator_vendor=vendor)
    if not resolved.get("accelerator_resource"):
        resolved["accelerator_resource"] = traits["resource"]
    if not resolved.get("image"):
        image = ((config.get("images") or {}).get(vendor) or {}).get(config.get("engine"))
        if not image:
            raise LlmopsError(
                "no %s image is known for %s accelerators: set inference_server_image (or the %s entry of the "
                "vendor's image map)" % (config.get("engine"), vendor, config.get("engine"))
            )
        resolved["image"] = image
    mounts = config.get("host_mounts")
    resolved["host_mounts"] = _host_mounts(traits["host_mounts"] if mounts is None else mounts)
    return resolved


def host_mount_volumes(config):
    """(volumes, volumeMounts) for the vendor's host paths (driver, tools) the engine container needs."""
    volumes, mounts = [], []
    for index, mount in enumerate(config.get("host_mounts") or []):
        name = "host-%d-%s" % (index, re.sub(r"[^a-z0-9]+", "-", mount["host_path"].lower()).strip("-"))[:63]
        name = name.rstrip("-")
        host_path = {"path": mount["host_path"]}
        if mount.get("type"):
            host_path["type"] = mount["type"]
        volumes.append({"name": name, "hostPath": host_path})
        mounts.append(
            {
                "name": name,
                "mountPath": mount.get("mount_path") or mount["host_path"],
                "readOnly": bool(mount.get("read_only", True)),
            }
        )
    return volumes, mounts


def _flag_names(argv):
    return {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}


def engine_option_args(engine, options):
    """Flags for the optional features (prefix caching, chunked prefill, parsers, metrics, extra args)."""
    traits = ENGINE_TRAITS[engine]
    args = []
    prefix = options.get("prefix_caching")
    if prefix is not None:
        args += traits["prefix_caching_on"] if prefix else traits["prefix_caching_off"]
    chunked = options.get("chunked_prefill")
    if chunked is True:
        args += traits["chunked_prefill_on"]
    elif chunked is False:
        args += traits["chunked_prefill_off"]
    if options.get("chunked_prefill_size"):
        args += [traits["chunked_prefill_size"], str(int(options["chunked_prefill_size"]))]
    if options.get("reasoning_parser"):
        args += ["--reasoning-parser", options["reasoning_parser"]]
    if options.get("tool_call_parser"):
        args += ["--tool-call-parser", options["tool_call_parser"]] + traits["tool_call_extra"]
    if options.get("enable_metrics", True):
        args += traits["metrics"]
    extra = options.get("extra_args") or []
    if not isinstance(extra, list):
        raise LlmopsError("inference_server_extra_args must be a list of strings, got %r" % (extra,))
    extra = [str(arg) for arg in extra]
    forbidden = sorted(_flag_names(extra) & (PARALLELISM_FLAGS | ROLE_FLAGS))
    if forbidden:
        raise LlmopsError(
            "extra engine args may not set %s: parallelism comes from the plan (use the plan overrides "
            "tensor_parallel/pipeline_parallel/...) and model/name/host/port/api-key from the role variables"
            % ", ".join(forbidden)
        )
    return args + extra


def vllm_launcher(plan):
    """How a multi-node vLLM plan starts: "ray" (one model instance spans nodes: PP/TP over a Ray cluster)
    or "vllm-data-parallel" (each node runs its own DP ranks, no Ray); the plan's ``multi_node.launcher``."""
    launcher = (plan.get("multi_node") or {}).get("launcher")
    return launcher if launcher in ("ray", "vllm-data-parallel") else "ray"


def _dp_local(plan):
    """DP ranks per node of a vllm-data-parallel plan (its ``--data-parallel-size-local``)."""
    per_node = list((plan.get("multi_node") or {}).get("per_node_args") or [])
    if "--data-parallel-size-local" in per_node:
        return int(per_node[per_node.index("--data-parallel-size-local") + 1])
    return max(1, int(plan.get("data_parallel", 1)) // max(1, int(plan["nodes"])))


def target_version(config):
    """(engine version the image runs, warnings): the image tag is the one place the version comes from."""
    from ansible_collections.llmops.inference.plugins.module_utils import engine_cli

    _engine, version = engine_cli.image_version(config.get("image"))
    if version is None:
        return None, [
            "cannot read the %s version from image %r: emitting the flags of %s %s"
            % (config["engine"], config.get("image"), config["engine"], engine_cli.newest_known(config["engine"]))
        ]
    return version, []


def server_argv(config, plan, multi_node):
    """The engine's argv (exec form). ``$(VAR)`` items are expanded by the kubelet from the container env.

    For SGLang across nodes every pod runs the same argv; the node rank comes from LWS_WORKER_INDEX
    (0 on the leader). For vLLM across nodes with the Ray launcher this is the leader's ``vllm serve`` line
    (Ray runs the rest); with the data-parallel launcher every pod runs it (``vllm_dp_script`` adds the
    start rank and ``--headless`` per pod). Flag names follow the image's engine version
    (engine_cli.apply_renames). The API key is never on argv (``container_env``, ``api_key_script``).
    """
    from ansible_collections.llmops.inference.plugins.module_utils import engine_cli

    engine = config["engine"]
    traits = ENGINE_TRAITS[engine]
    argv = [part.format(model_path=config["model_path"]) for part in traits["launch"]]
    launch_length = len(argv)
    argv += ["--served-model-name", config["served_model_name"], "--host", "0.0.0.0", "--port", str(config["port"])]
    plan_args = list(plan["engine_args"])
    argv += plan_args
    if multi_node and engine == "sglang":
        argv += ["--dist-init-addr", "$(LWS_LEADER_ADDRESS):%d" % config["dist_init_port"]]
        if "--nnodes" not in plan_args:
            argv += ["--nnodes", "$(LWS_GROUP_SIZE)"]
        argv += ["--node-rank", "$(LWS_WORKER_INDEX)"]
    if multi_node and engine == "vllm":
        if vllm_launcher(plan) == "vllm-data-parallel":
            argv += [
                "--data-parallel-size-local",
                str(_dp_local(plan)),
                "--data-parallel-address",
                "$(LWS_LEADER_ADDRESS)",
                "--data-parallel-rpc-port",
                str(config.get("dp_rpc_port", DP_RPC_PORT)),
            ]
        elif "--distributed-executor-backend" not in plan_args:
            argv += ["--distributed-executor-backend", "ray"]
    option_args = engine_option_args(engine, config.get("options") or {})
    clash = sorted(_flag_names(option_args) & _flag_names(plan_args))
    if clash:
        raise LlmopsError("engine options repeat flags the plan already sets: %s" % ", ".join(clash))
    argv += option_args
    version, _warnings = target_version(config)
    flags, _notes = engine_cli.apply_renames(engine, version, argv[launch_length:])
    return argv[:launch_length] + flags


def vllm_dp_script(config, plan, argv, role):
    """One node of a vLLM data-parallel group (no Ray): its DP ranks start at worker index x local size;
    the workers run ``--headless`` (engine cores only, the leader serves the API)."""
    start = '"$(( ${LWS_WORKER_INDEX} * %d ))"' % _dp_local(plan)
    line = shell_join(argv + (["--headless"] if role == "worker" else [])) + " --data-parallel-start-rank " + start
    return "set -e\nexec " + line


def shell_quote(token):
    """Quote one argv item for sh, turning kubelet ``$(VAR)`` references into shell ``${VAR}``."""
    parts = []
    position = 0
    for match in _ENV_REF.finditer(token):
        if match.start() > position:
            parts.append(_quote_literal(token[position : match.start()]))
        parts.append('"${%s}"' % match.group(1))
        position = match.end()
    if position < len(token) or not parts:
        parts.append(_quote_literal(token[position:]))
    return "".join(parts)


def _quote_literal(text):
    if text and re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def shell_join(argv):
    return " ".join(shell_quote(token) for token in argv)


def ray_leader_script(config, vllm_argv):
    """Start the Ray head, wait until the whole LWS group has joined, then run vllm serve on top of it."""
    count_nodes = (
        'python3 -c \'import ray; ray.init(address="auto", logging_level="ERROR"); '
        'print(sum(1 for n in ray.nodes() if n["Alive"]))\' 2>/dev/null | tail -n 1'
    )
    return "\n".join(
        [
            "set -e",
            "ray start --head --port=%d --disable-usage-stats" % config["ray_port"],
            'until [ "$(%s)" -ge "${LWS_GROUP_SIZE}" ] 2>/dev/null; do' % count_nodes,
            '  echo "waiting for ${LWS_GROUP_SIZE} Ray nodes to join"; sleep 5',
            "done",
            "exec " + shell_join(vllm_argv),
        ]
    )


def ray_worker_script(config):
    """Join the leader's Ray head; retry while the head is still starting (the group starts together)."""
    join = shell_join(
        ["ray", "start", "--address=$(LWS_LEADER_ADDRESS):%d" % config["ray_port"], "--block", "--disable-usage-stats"]
    )
    return "\n".join(
        [
            "until %s; do" % join,
            '  echo "waiting for the Ray head at ${LWS_LEADER_ADDRESS}"; sleep 5',
            "done",
        ]
    )


def api_key_script(argv):
    """SGLang's start with the API key off argv: SGLang reads the key only from --api-key or a --config
    YAML file (ServerArgs, 0.5.6.post2 to 0.5.23), so the key goes from the Secret-backed env into a 0600
    file on the pod's memory-backed /dev/shm and the argv names only the file. The key is then in no
    manifest, no argv (/proc/*/cmdline) and no shell trace (the env is read inside python, not expanded)."""
    write = 'python3 -c \'import json, os; print("api_key: " + json.dumps(os.environ["%s"]))\' > %s' % (
        API_KEY_ENV,
        SGLANG_API_KEY_FILE,
    )
    return "\n".join(["set -e", "umask 077", write, "exec " + shell_join(argv + ["--config", SGLANG_API_KEY_FILE])])


def engine_command(config, plan, argv, role):
    """The container command of an engine pod (role single|leader|worker): the argv itself, or the shell
    that starts the Ray node, one vLLM data-parallel node, or SGLang with its API key file."""
    if config["engine"] == "vllm" and role in ("leader", "worker"):
        if vllm_launcher(plan) == "vllm-data-parallel":
            return ["/bin/bash", "-c", vllm_dp_script(config, plan, argv, role)]
        if role == "leader":
            return ["/bin/bash", "-c", ray_leader_script(config, argv)]
        return ["/bin/bash", "-c", ray_worker_script(config)]
    if config["engine"] == "sglang" and config.get("api_key_secret") and role in ("single", "leader"):
        return ["/bin/bash", "-c", api_key_script(argv)]
    return argv


def container_env(config, serves_api):
    """Env of every engine container: NCCL/GLOO (from llmops_nccl_env), offline hub, extras, API key."""
    env = [{"name": name, "value": str(value)} for name, value in sorted((config.get("nccl_env") or {}).items())]
    # The model is read from the local cache; never let the engine reach out to a hub at start.
    env += [{"name": "HF_HUB_OFFLINE", "value": "1"}]
    env += [{"name": name, "value": str(value)} for name, value in sorted((config.get("extra_env") or {}).items())]
    if serves_api and config.get("api_key_secret"):
        env.append(
            {
                "name": VLLM_API_KEY_ENV if config["engine"] == "vllm" else API_KEY_ENV,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": config["api_key_secret"],
                        "key": config.get("api_key_secret_key", "api-key"),
                    }
                },
            }
        )
    names = [item["name"] for item in env]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LlmopsError("environment variables set twice (NCCL env and extra env): %s" % ", ".join(duplicates))
    return env


def shm_size_gib(config, plan):
    """/dev/shm for NCCL and the engine's worker processes: a per-accelerator share, at least 8 GiB."""
    if config.get("shm_gib"):
        return int(config["shm_gib"])
    return max(8, accelerators_per_pod(plan) * int(config.get("shm_gib_per_accelerator", 16)))


def startup_seconds(config, plan):
    """Time a pod may take to load its weights and warm up (CUDA graphs) before the probes count.

    Weights per pod (plan) over a conservative read throughput, plus a fixed warm-up; at least 10 min.
    """
    weights_gib = float(plan.get("weights_gib_per_accelerator") or 0) * accelerators_per_pod(plan)
    throughput = float(config.get("load_gib_per_second", 0.5))
    seconds = weights_gib / throughput + int(config.get("warmup_seconds", 300))
    return max(600, int(math.ceil(seconds)))


def probes(config, plan):
    period = 10
    http = {"path": "/health", "port": "http"}
    return {
        "startupProbe": {
            "httpGet": dict(http),
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": int(math.ceil(startup_seconds(config, plan) / float(period))),
        },
        "readinessProbe": {"httpGet": dict(http), "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": dict(http), "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 5},
    }


def resources(config, plan):
    per_pod = accelerators_per_pod(plan)
    amounts = {config["accelerator_resource"]: str(per_pod)}
    for name, value in sorted((config.get("rdma_resources") or {}).items()):
        amounts[name] = str(value)
    limits = dict(amounts)
    requests = dict(amounts)
    if config.get("cpu"):
        requests["cpu"] = limits["cpu"] = str(config["cpu"])
    if config.get("memory"):
        requests["memory"] = limits["memory"] = str(config["memory"])
        # A memory-backed emptyDir counts against the container's memory limit.
        if quantity_bytes(config["memory"]) <= shm_size_gib(config, plan) * 2**30:
            raise LlmopsError(
                "memory %s leaves no room beside /dev/shm of %dGi; raise the memory or lower shm"
                % (config["memory"], shm_size_gib(config, plan))
            )
    return {"limits": limits, "requests": requests}


def labels(config, role=None):
    result = {
        "app.kubernetes.io/name": config["name"],
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/managed-by": "llmops.inference",
        "llmops.io/engine": config["engine"],
    }
    if role:
        result["llmops.io/role"] = role
    return result


def leader_selector(config):
    """Labels that select the pods answering the API (the single pod, or the LWS leaders)."""
    return {"app.kubernetes.io/name": config["name"], "llmops.io/role": "leader"}


def _engine_container(config, plan, cache, role):
    multi_node = role in ("leader", "worker")
    serves_api = role in ("single", "leader")
    argv = server_argv(config, plan, multi_node)
    container = {
        "name": "engine",
        "image": config["image"],
        "imagePullPolicy": config.get("image_pull_policy", "IfNotPresent"),
        "env": container_env(config, serves_api),
        "resources": resources(config, plan),
        # IPC_LOCK lets NCCL/verbs pin memory for RDMA; nothing privileged.
        "securityContext": {"privileged": False, "capabilities": {"add": ["IPC_LOCK"]}},
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": cache["mount_path"], "readOnly": bool(cache.get("read_only"))},
        ]
        + host_mount_volumes(config)[1],
    }
    container["command"] = engine_command(config, plan, argv, role)
    ports = [{"name": "http", "containerPort": int(config["port"]), "protocol": "TCP"}] if serves_api else []
    if role == "leader" and config["engine"] == "sglang":
        ports.append({"name": "dist-init", "containerPort": int(config["dist_init_port"]), "protocol": "TCP"})
    if role == "leader" and config["engine"] == "vllm" and vllm_launcher(plan) == "ray":
        ports.append({"name": "ray", "containerPort": int(config["ray_port"]), "protocol": "TCP"})
    elif role == "leader" and config["engine"] == "vllm":
        ports.append(
            {"name": "dp-rpc", "containerPort": int(config.get("dp_rpc_port", DP_RPC_PORT)), "protocol": "TCP"}
        )
    container["ports"] = ports
    if serves_api:
        container.update(probes(config, plan))
    return container


def pod_spec(config, plan, cache, role):
    """PodSpec for ``role`` in single|leader|worker. ``cache`` is the model_cache layout (llmops_model_cache)."""
    spec = {
        "containers": [_engine_container(config, plan, cache, role)],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "%dGi" % shm_size_gib(config, plan)}}
        ],
        "terminationGracePeriodSeconds": 60,
    }
    if cache.get("volume"):
        spec["volumes"].append(dict(cache["volume"], name="model-cache"))
    if cache.get("init_container"):
        spec["initContainers"] = [cache["init_container"]]
    if cache.get("extra_volumes"):
        spec["volumes"] += cache["extra_volumes"]
    spec["volumes"] += host_mount_volumes(config)[0]
    if config.get("host_network"):
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if config.get("scheduler_name"):
        spec["schedulerName"] = config["scheduler_name"]
    if config.get("node_selector"):
        spec["nodeSelector"] = dict(config["node_selector"])
    if config.get("tolerations"):
        spec["tolerations"] = list(config["tolerations"])
    if config.get("service_account"):
        spec["serviceAccountName"] = config["service_account"]
    if int(plan["nodes"]) > 1 or int(config.get("replicas", 1)) > 1:
        # Never two engine pods of this server on one node: each wants every accelerator of its node.
        spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        # Engine pods only: the model download Job's pod shares the name label.
                        "labelSelector": {
                            "matchLabels": {
                                "app.kubernetes.io/name": config["name"],
                                "app.kubernetes.io/component": "inference-server",
                            }
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
    return spec


def validate_config(config):
    if config.get("engine") not in ENGINES:
        raise LlmopsError("unknown engine %r: choose one of %s" % (config.get("engine"), ", ".join(ENGINES)))
    for key in ("name", "namespace", "image", "served_model_name", "model_path", "accelerator_resource"):
        if not config.get(key):
            raise LlmopsError("inference server setting %s is empty" % key)
    if not re.match(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$", config["name"]):
        raise LlmopsError(
            "server name %r must be a DNS label of at most 42 characters (it prefixes pod names)" % config["name"]
        )
    if int(config.get("replicas", 1)) < 1:
        raise LlmopsError("replicas must be at least 1")
    return config


def _pod_template(config, plan, cache, role, annotations):
    metadata = {"labels": labels(config, "leader" if role in ("single", "leader") else "worker")}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": pod_spec(config, plan, cache, role)}


def workload_kind(plan, cache):
    if int(plan["nodes"]) > 1:
        return "LeaderWorkerSet"
    return "StatefulSet" if cache.get("volume_claim_template") else "Deployment"


def pods_total(config, plan):
    return int(plan["nodes"]) * int(config.get("replicas", 1))


def server_manifests(config, plan, cache):
    """Every object of the server, in apply order: [PodGroup], workload."""
    validate_plan(plan)
    config = validate_config(resolve_accelerator(config, plan))
    objects = []
    annotations = {}
    volcano = config.get("volcano") or {}
    if volcano.get("enabled"):
        config = dict(config, scheduler_name=config.get("scheduler_name") or "volcano")
        if volcano.get("podgroup", True):
            objects.append(podgroup(config, plan))
            annotations[VOLCANO_GROUP_ANNOTATION] = config["name"]
    meta = {"name": config["name"], "namespace": config["namespace"], "labels": labels(config)}
    kind = workload_kind(plan, cache)
    replicas = int(config.get("replicas", 1))
    if kind == "LeaderWorkerSet":
        if config.get("exclusive_topology"):
            meta["annotations"] = {LWS_EXCLUSIVE_TOPOLOGY_ANNOTATION: config["exclusive_topology"]}
        template = {
            "size": int(plan["nodes"]),
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": _pod_template(config, plan, cache, "leader", annotations),
            "workerTemplate": _pod_template(config, plan, cache, "worker", annotations),
        }
        if cache.get("volume_claim_template"):
            template["volumeClaimTemplates"] = [cache["volume_claim_template"]]
        workload = {
            "apiVersion": LWS_API_VERSION,
            "kind": kind,
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "startupPolicy": "LeaderCreated",
                "rolloutStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdateConfiguration": {"maxSurge": 0, "maxUnavailable": 1},
                },
                "leaderWorkerTemplate": template,
            },
        }
    else:
        spec = {
            "replicas": replicas,
            "selector": {"matchLabels": leader_selector(config)},
            "template": _pod_template(config, plan, cache, "single", annotations),
        }
        if kind == "StatefulSet":
            spec["serviceName"] = config["name"]
            spec["podManagementPolicy"] = "Parallel"
            spec["volumeClaimTemplates"] = [cache["volume_claim_template"]]
        else:
            # A GPU server cannot surge: the new pod would wait for the old pod's accelerators.
            spec["strategy"] = {"type": "Recreate"}
        workload = {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
    objects.append(workload)
    return objects


def podgroup(config, plan):
    """Volcano gang: every pod of the server (all LWS groups) is scheduled together or not at all.

    With several LWS replicas use LWS's own Volcano integration instead (one PodGroup per group).
    """
    members = pods_total(config, plan)
    volcano = config.get("volcano") or {}
    spec = {
        "minMember": members,
        "minResources": {config["accelerator_resource"]: str(members * accelerators_per_pod(plan))},
    }
    if volcano.get("queue"):
        spec["queue"] = volcano["queue"]
    if volcano.get("priority_class"):
        spec["priorityClassName"] = volcano["priority_class"]
    return {
        "apiVersion": PODGROUP_API_VERSION,
        "kind": "PodGroup",
        "metadata": {"name": config["name"], "namespace": config["namespace"], "labels": labels(config)},
        "spec": spec,
    }


def opaque_secret(name, namespace, server_name, string_data, annotations=None):
    """An Opaque Secret of the server, built in Python so no role templates secret values into YAML."""
    metadata = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": server_name, "app.kubernetes.io/managed-by": "llmops.inference"},
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "stringData": string_data}


def api_key_secret(name, namespace, key, value, server_name):
    """The Secret holding the OpenAI API key."""
    return opaque_secret(name, namespace, server_name, {key: value})
