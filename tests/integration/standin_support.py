"""Helpers for the engine stand-in tests (testbed/standin): its image's files laid out locally, a small
complete model folder, free ports, HTTP calls."""

import importlib.util
import json
import os
import socket
import struct
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = "/usr/local/lib/python3.11/dist-packages"

STANDIN_IMAGE = "docker.io/lmsysorg/sglang:v0.5.23"  # inference_server_images.sglang, built as the stand-in
MODEL_ID = "llmops/tiny-standin"
# 2 nodes x 1 simulated GPU, tp 2: half of the bed's real nodes (2 GPUs each), so `make demo`'s vLLM pod
# (1 GPU) may stay up while the tests run.
PLAN = {
    "engine": "sglang",
    "nodes": 2,
    "accelerators_per_node": 1,
    "accelerators_used": 2,
    "tensor_parallel": 2,
    "pipeline_parallel": 1,
    "data_parallel": 1,
    "expert_parallel": 1,
    "attention_data_parallel": 1,
    "engine_args": ["--tp-size", "2", "--nnodes", "2", "--context-length", "2048"],
    "multi_node": {"launcher": "sglang", "required": True},
    "fits": True,
    "reasons": [],
    "warnings": [],
    "model": {"id": MODEL_ID, "parameters": 1000000},
    "weights_gib_total": 0.01,
    "context_length": 2048,
}


# The same server on one node: one pod of one simulated GPU per replica, so each real node can hold a replica.
SINGLE_NODE_PLAN = dict(
    PLAN,
    nodes=1,
    accelerators_used=1,
    tensor_parallel=1,
    engine_args=["--tp-size", "1", "--context-length", "2048"],
    multi_node={"required": False, "launcher": None, "per_node_args": []},
)


def fill_host_models(namespace):
    """The hostPath cache folder, filled as the staging Jobs would (model files + the completion stamp the
    model-wait init container checks). The real nodes' containerd runs on this machine, so their hostPath
    is this machine's folder. The caller removes it."""
    base = "/tmp/llmops-standin-%s" % namespace
    model = make_model(os.path.join(base, MODEL_ID.replace("/", "--")), shards=3)
    with open(os.path.join(model, ".llmops-complete"), "w") as handle:
        handle.write("modelscope|%s||" % MODEL_ID)
    os.chmod(base, 0o755)
    return base


def group_vars(namespace, host_models, real_nodes, name):
    """Extra vars that put inventories/testbed's serve stage on the real nodes: the PLAN group of the stand-in,
    its model from ``host_models``, a fresh API key."""
    return {
        "llmops_namespace": namespace,
        "llmops_model_id": MODEL_ID,
        "llmops_served_model_name": name,
        "llmops_accelerators_per_node": 1,
        "serving_plan_override": PLAN,
        "model_cache_host_path": host_models,
        "model_cache_model_gib": 1,
        "model_cache_stage_nodes": real_nodes,
        "model_cache_wait_image": STANDIN_IMAGE,
        "inference_server_rdma_resources": {"rdma/ib": 1},
        "inference_server_cpu": "1",
        "inference_server_memory": "2Gi",
        "inference_server_shm_gib": 1,
        "inference_server_node_selector": {"type": "real"},
        "inference_server_tolerations": [{"key": "llmops.io/real-node", "operator": "Exists", "effect": "NoSchedule"}],
        "inference_server_api_key": "sk-standin-" + uuid.uuid4().hex,
        "inference_server_render_api_key_secret": True,
    }


def image_build():
    spec = importlib.util.spec_from_file_location("image_build", os.path.join(ROOT, "scripts/testbed/image_build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_root(directory):
    """The engine-standin image's `files` (testbed/images/images.json) copied under ``directory`` by the same
    code image_build.py uses, so the local runs see exactly the image's layout. Returns the env to run with."""
    builder = image_build()
    spec = json.loads(builder.SPEC.read_text())["engine-standin"]
    builder.copy_files(builder.Path(directory), builder.repo_files(spec["files"]))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LWS_", "VLLM_", "LLMOPS_"))}
    env.update(item.split("=", 1) for item in spec["env"] if not item.startswith("PATH="))
    env["PYTHONPATH"] = str(directory) + SITE
    env["PYTHONUNBUFFERED"] = "1"
    return env


def safetensors_bytes(values):
    """A real safetensors file holding one F32 tensor ``w`` of ``values``."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, 4 * len(values)]}})
    header = header.encode().ljust((len(header) + 7) // 8 * 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<%df" % len(values), *values)


def make_model(directory, shards=2):
    """config.json, a safetensors index and its shards: what the stand-in checks a model folder for."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": shards}, handle)
    names = ["model-%05d-of-%05d.safetensors" % (i + 1, shards) for i in range(shards)]
    weight_map = {"model.layers.%d.w" % i: name for i, name in enumerate(names)}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as handle:
        json.dump({"metadata": {"total_size": 8 * shards}, "weight_map": weight_map}, handle)
    for i, name in enumerate(names):
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(safetensors_bytes([float(i), 1.0]))
    return directory


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(url, body=None, key=None, timeout=5):
    """(status, parsed JSON or text) of a GET (body None) or POST."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw
