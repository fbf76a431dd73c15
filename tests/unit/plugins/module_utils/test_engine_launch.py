"""Issue 10 #9-#11: the vLLM data-parallel launcher, no SGLang multi-node DP with TP 1, the API key off argv."""

import copy
import json

import pytest
import yaml
from serving_cases import INVENTORIES, case

from ansible_collections.llmops.inference.plugins.module_utils import kserve, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan as make_plan

DP_REQUEST = {
    "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "accelerator": "H100-80G",
    "accelerators_per_node": 8,
    "nodes": 2,
    "inter_node_link": "ib",
    "engine": "vllm",
    "tensor_parallel": 1,
    "data_parallel": 16,
}


def _engines(objects):
    lws = [o for o in objects if o["kind"] == "LeaderWorkerSet"][0]
    template = lws["spec"]["leaderWorkerTemplate"]
    return template["leaderTemplate"]["spec"]["containers"][0], template["workerTemplate"]["spec"]["containers"][0]


def _dp_case():
    config, _plan, cache = case("qwen3-235b-vllm-2node-ray")
    plan = make_plan(dict(DP_REQUEST, engine_image=config["image"]))  # the release the inventory's image runs
    assert plan["multi_node"]["launcher"] == "vllm-data-parallel"
    config["model_path"] = "/models/m"
    return config, plan, cache


def test_vllm_data_parallel_launcher_builds_the_per_node_flags_without_ray():
    config, plan, cache = _dp_case()
    leader, worker = _engines(serving.server_manifests(config, plan, cache["layout"]))
    lead, work = leader["command"][2], worker["command"][2]
    for script in (lead, work):
        serve = script.splitlines()[-1]
        assert serve.startswith("exec vllm serve /models/m ")
        assert "ray" not in script and "--distributed-executor-backend" not in script
        assert "--data-parallel-size 16" in serve and "--data-parallel-size-local 8" in serve
        assert '--data-parallel-address "${LWS_LEADER_ADDRESS}"' in serve
        assert "--data-parallel-rpc-port 29550" in serve
    # vLLM's internal load balancing: a start rank on the API node would switch it to hybrid/external
    assert work.endswith('--headless --data-parallel-start-rank "$(( ${LLMOPS_WORKER_INDEX} * 8 ))"')
    assert "--headless" not in lead and "--data-parallel-start-rank" not in lead
    assert {"name": "dp-rpc", "containerPort": 29550, "protocol": "TCP"} in leader["ports"]
    assert not any(port["name"] == "ray" for port in leader["ports"])


def test_ray_kept_for_pipeline_across_nodes():
    config, plan, cache = case("qwen3-235b-vllm-2node-ray")
    assert plan["multi_node"]["launcher"] == "ray"
    leader, worker = _engines(serving.server_manifests(config, plan, cache["layout"]))
    assert "ray start --head" in leader["command"][2] and "ray start --address" in worker["command"][2]
    assert "--distributed-executor-backend ray" in leader["command"][2]


def test_sglang_multi_node_dp_with_tp1_is_not_planned():
    request = dict(DP_REQUEST, engine="sglang", accelerators_per_node=1, data_parallel=2)
    with pytest.raises(LlmopsError, match="SGLang cannot spread data_parallel=2 replicas over 2 nodes"):
        make_plan(request)
    # left to itself the planner keeps DP inside one node, where SGLang accepts it
    auto = make_plan(dict(request, data_parallel=None, tensor_parallel=None, nodes=2, accelerators_per_node=8))
    assert auto["data_parallel"] == 1 or auto["nodes"] == 1
    assert not ("--dp-size" in auto["engine_args"] and "--nnodes" in auto["engine_args"])


SECRET = "sk-llmops-test-key-0123456789"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_api_key_is_in_no_rendered_object(inventory):
    config, plan, cache = case(inventory)
    objects = serving.server_manifests(config, plan, cache["layout"])
    objects.append(serving.api_key_secret(config["api_key_secret"], config["namespace"], "api-key", SECRET, "x"))
    text = json.dumps(objects[:-1]) + yaml.safe_dump(objects[:-1])
    assert SECRET not in text
    for obj in objects[:-1]:
        for container in _containers(obj):
            assert "--api-key" not in container.get("command", []) and "--api-key" not in " ".join(
                container.get("command", [])
            )
            for item in container.get("env", []):
                if item["name"] in (serving.API_KEY_ENV, serving.VLLM_API_KEY_ENV):
                    assert set(item) == {"name", "valueFrom"}  # from the Secret, never a literal


def _containers(obj):
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "containers" in node and isinstance(node["containers"], list):
                found.extend(node["containers"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj)
    return found


def test_vllm_reads_the_key_from_vllm_api_key_and_sglang_from_a_config_file():
    config, plan, cache = case("qwen3-235b-vllm-tp8")
    container = serving.server_manifests(config, plan, cache["layout"])[0]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": config["api_key_secret"], "key": "api-key"}
    config, plan, cache = case("local")
    command = serving.server_manifests(config, plan, cache["layout"])[0]["spec"]["template"]["spec"]["containers"][0]
    script = command["command"][2]
    # the env is read inside python (not expanded by the shell), into a 0600 file on /dev/shm
    assert 'os.environ["LLMOPS_API_KEY"]' in script and "${LLMOPS_API_KEY}" not in script
    assert script.splitlines()[-1].endswith("--config " + serving.SGLANG_API_KEY_FILE)


def test_kserve_runtime_keeps_the_key_off_argv():
    config, plan, _cache = case("local")
    config = copy.deepcopy(config)
    runtime = kserve.serving_runtime(config, plan, {"name": "x", "storage_uri": "s3://b/m", "service_account": ""})
    container = runtime["spec"]["containers"][0]
    assert "--api-key" not in " ".join(container["command"])
