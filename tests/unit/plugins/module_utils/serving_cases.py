"""The example inventories as (server config, plan, cache) triples, shared by the serving unit tests.

Plans are tests/integration/fixtures/plans/<inventory>.yml (shaped like parallelism_plan's `plan`
return); configs are what roles/inference_server/tasks/build.yml hands to the filter for that
inventory's group_vars; the cache layout comes from model_cache.cache_plan for the same inventory.
"""

import os

import yaml

from ansible_collections.llmops.inference.plugins.module_utils import model_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PLANS = os.path.join(ROOT, "tests", "integration", "fixtures", "plans")
INVENTORIES = (
    "local",
    "deepseek-r1-2x8-a800-sglang",
    "distill-1gpu",
    "qwen3-235b-vllm-tp8",
    "qwen3-235b-vllm-2node-ray",
)
with open(os.path.join(ROOT, "roles", "model_cache", "files", "download-model.sh")) as _handle:
    SCRIPT = _handle.read()


def load_plan(inventory):
    with open(os.path.join(PLANS, inventory + ".yml")) as handle:
        return yaml.safe_load(handle)


def group_vars(inventory):
    with open(os.path.join(ROOT, "inventories", inventory, "group_vars", "all.yml")) as handle:
        return yaml.safe_load(handle)


def _name(served):
    import re

    return re.sub(r"^-+|-+$", "", re.sub(r"[^a-z0-9-]+", "-", served.lower()))


def cache_config(inventory):
    gv = group_vars(inventory)
    return {
        "name": _name(gv["llmops_served_model_name"]),
        "namespace": gv["llmops_namespace"],
        "source": gv["llmops_model_source"],
        "model_id": gv["llmops_model_id"],
        "revision": "",
        "storage": gv.get("model_cache_storage", "pvc"),
        "storage_class": gv.get("model_cache_storage_class", ""),
        "access_mode": gv.get("model_cache_access_mode", "ReadWriteMany"),
        "size_gib": 0,
        "model_gib": gv.get("model_cache_model_gib", 0),
        "host_path": "/mnt/models",
        "mount_path": "/models",
        "images": {
            "huggingface": "docker.io/library/python:3.12-slim",
            "modelscope": "docker.io/library/python:3.12-slim",
            "s3": "docker.io/amazon/aws-cli:2.27.50",
        },
        "wait_image": "docker.io/library/python:3.12-slim",
        "pip_install": True,
        "pip_index_url": gv.get("model_cache_pip_index_url", ""),
        "hf_endpoint": gv.get("model_cache_hf_endpoint", ""),
        "hf_token_secret": "",
        "s3": {
            "uri": gv.get("model_cache_s3_uri", ""),
            "endpoint": gv.get("model_cache_s3_endpoint", ""),
            "region": "us-east-1",
            "credentials_secret": gv.get("model_cache_s3_credentials_secret", ""),
        },
        "script": SCRIPT,
    }


def server_config(inventory):
    gv = group_vars(inventory)
    engine = gv["llmops_engine"]
    images = {"sglang": "docker.io/lmsysorg/sglang:v0.5.6.post2-cu129", "vllm": "docker.io/vllm/vllm-openai:v0.12.0"}
    name = _name(gv["llmops_served_model_name"])
    return {
        "name": name,
        "namespace": gv["llmops_namespace"],
        "engine": engine,
        "image": images[engine],
        "port": 8000,
        "served_model_name": gv["llmops_served_model_name"],
        "replicas": 1,
        "api_key_secret": name + "-api-key",
        "api_key_secret_key": "api-key",
        "options": {
            "prefix_caching": gv.get("inference_server_prefix_caching"),
            "chunked_prefill": gv.get("inference_server_chunked_prefill"),
            "chunked_prefill_size": 0,
            "reasoning_parser": gv.get("inference_server_reasoning_parser", ""),
            "tool_call_parser": gv.get("inference_server_tool_call_parser", ""),
            "enable_metrics": True,
            "extra_args": gv.get("inference_server_extra_args", []),
        },
        "extra_env": {},
        "nccl_env": gv.get("llmops_nccl_env", {}),
        "accelerator_resource": "nvidia.com/gpu",
        "rdma_resources": gv.get("inference_server_rdma_resources", {}),
        "cpu": gv.get("inference_server_cpu", ""),
        "memory": gv.get("inference_server_memory", ""),
        "cpu_per_accelerator": gv.get("inference_server_cpu_per_accelerator", ""),
        "memory_per_accelerator": gv.get("inference_server_memory_per_accelerator", ""),
        "shm_gib": 0,
        "shm_gib_per_accelerator": 16,
        "host_network": gv.get("inference_server_host_network", False),
        "host_ifname": gv.get("inference_server_host_ifname", ""),
        "pod_ifname": "eth0",
        "openshift": gv.get("llmops_openshift", False),
        "scheduler_name": "",
        "volcano": {
            "enabled": gv.get("inference_server_volcano_enabled", False),
            "queue": gv.get("inference_server_volcano_queue", ""),
            "podgroup": True,
        },
        "dist_init_port": 20000,
        "ray_port": 6379,
        "load_gib_per_second": 0.5,
        "warmup_seconds": 300,
    }


def case(inventory):
    plan = load_plan(inventory)
    cache = model_cache.cache_plan(cache_config(inventory), plan, 1)
    config = server_config(inventory)
    config["model_path"] = cache["layout"]["model_path"]
    return config, plan, cache
