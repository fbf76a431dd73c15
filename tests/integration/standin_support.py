"""Helpers for the engine stand-in tests (testbed/standin): its image's files laid out locally, a small
complete model folder, free ports, HTTP calls."""

import importlib.util
import json
import os
import socket
import struct
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = "/usr/local/lib/python3.11/dist-packages"


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
