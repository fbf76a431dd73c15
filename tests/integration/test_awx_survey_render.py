"""Survey answers -> the extra_vars the controller passes -> a real `ansible-playbook playbooks/site.yml`
run in render mode (inventories/local, the planner computing the plan: no recorded plan override).

Each case is a survey answer set that matters (engines, vendors, single and multi node, mirrors,
model sources, replicas, an explicit context length); every one is first checked against the
controller's survey rules (awx_survey_schema, restated from AWX's source), so these are answers the
controller would accept, and then must render. A combination the survey allows but the hardware cannot
hold must stop in the plan step with the planner's reasons, before anything is written.
"""

import json
import os
import sys

import pytest
import yaml
from render_helpers import ensure_collection_link, rendered_files, run_render, validate_custom_resources

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit"))
ensure_collection_link()

from awx_survey_schema import validate_answers, validate_spec  # noqa: E402
from render_helpers import COLLECTIONS  # noqa: E402

sys.path.insert(0, COLLECTIONS)
from ansible_collections.llmops.inference.plugins.module_utils import awx_config  # noqa: E402

SPEC = awx_config.survey_spec(model_sources=["huggingface", "modelscope"])
DEFAULTS = awx_config.survey_defaults(SPEC)

# The whole of site.yml for the cases whose answers reach the add-on stage (the registry mirror rewrites
# add-on images too); the others change only what the serve stage builds, so they run `--tags serve`
# (a site.yml run takes minutes on the shared CI machine).
FULL_SITE = ("defaults", "vllm-fp8-h200-mirrors")

CASES = {
    "defaults": {},
    "vllm-fp8-h200-mirrors": {
        "llmops_model_id": "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
        "llmops_engine": "vllm",
        "llmops_accelerator": "H200-141G",
        "llmops_accelerators_per_node": 8,
        "llmops_registry_mirror": "harbor.example.cn:5000/proxy",
        "model_cache_hf_endpoint": "https://hf-mirror.com",
        "serving_plan_context_length": 32768,
    },
    "sglang-r1-2-nodes-modelscope": {
        "llmops_model_id": "deepseek-ai/DeepSeek-R1",
        "llmops_accelerator": "H20-96G",
        "llmops_accelerators_per_node": 8,
        "llmops_nodes": 2,
        "llmops_model_source": "modelscope",
        "model_cache_modelscope_domain": "www.modelscope.cn",
        "llmops_replicas": 2,
    },
    "vllm-ray-2-nodes": {
        # 470 GB of BF16 weights do not fit 8 x 48 GB: the planner spans both nodes (vLLM over Ray)
        "llmops_model_id": "Qwen/Qwen3-235B-A22B",
        "llmops_engine": "vllm",
        "llmops_accelerator": "L40S",
        "llmops_accelerators_per_node": 8,
        "llmops_nodes": 2,
    },
    "ascend-vllm": {
        "llmops_model_id": "Qwen/Qwen3-32B",
        "llmops_engine": "vllm",
        "llmops_accelerator": "Ascend-910B-64G",
        "llmops_accelerators_per_node": 4,
        "llmops_replicas": 3,
    },
}


# inventories/local sizes the server pod per accelerator (inference_server_memory_per_accelerator), so
# every case runs on the site's own sizing: the pod's memory follows the accelerators per pod the answers
# ask for and holds their /dev/shm (test_pod_sizing_follows_the_survey_shape shows it on 4 per pod).


def answers(case):
    return dict(DEFAULTS, **CASES[case])


def container_images(node):
    """Every image of every container list in an object (pods, templates, LWS leader/worker)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (container["image"] for container in value if container.get("image"))
            else:
                yield from container_images(value)
    elif isinstance(node, list):
        for item in node:
            yield from container_images(item)


def manifests(render_dir):
    """kind -> [objects]; Helm values files (values-*.yaml) written next to the manifests are not objects."""
    objects = {}
    for path in rendered_files(render_dir):
        if os.path.basename(path).startswith("values-"):
            continue
        with open(path) as handle:
            obj = yaml.safe_load(handle)
        objects.setdefault(obj["kind"], []).append(obj)
    return objects


def test_survey_spec_and_cases_are_what_the_controller_accepts():
    assert validate_spec(SPEC) == []
    for case in CASES:
        assert validate_answers(SPEC, answers(case)) == [], case


@pytest.mark.parametrize("case", sorted(CASES))
def test_survey_answers_render_site(case, tmp_path):
    extra_vars = answers(case)
    tags = [] if case in FULL_SITE else ["--tags", "serve"]
    result = run_render(
        "local",
        str(tmp_path),
        "-e",
        json.dumps(extra_vars),
        *tags,
        plan=False,
        playbook="site.yml",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    objects = manifests(str(tmp_path))
    workloads = objects.get("LeaderWorkerSet", []) + objects.get("Deployment", []) + objects.get("StatefulSet", [])
    assert len(workloads) == 1, sorted(objects)
    workload = workloads[0]
    assert workload["spec"]["replicas"] == extra_vars["llmops_replicas"]
    text = ""
    for path in rendered_files(str(tmp_path)):
        with open(path) as handle:
            text += handle.read()
    assert extra_vars["llmops_model_id"] in text
    # the planner may use fewer nodes than the survey offers; these cases are sized to need them all
    if extra_vars["llmops_nodes"] > 1:
        assert workload["kind"] == "LeaderWorkerSet"
        assert workload["spec"]["leaderWorkerTemplate"]["size"] == extra_vars["llmops_nodes"]
    mirror = extra_vars.get("llmops_registry_mirror")
    if mirror:
        images = [image for kind in objects.values() for obj in kind for image in container_images(obj)]
        assert images and all(image.startswith(mirror + "/") for image in images), images
    validate_custom_resources(objects)


def test_an_allowed_answer_that_cannot_fit_stops_in_the_plan_step(tmp_path):
    """DeepSeek-R1 (671B) on one 24 GiB A10: every answer is valid for the controller; the planner refuses
    it with its numbers and nothing is rendered."""
    extra_vars = dict(
        DEFAULTS,
        llmops_model_id="deepseek-ai/DeepSeek-R1",
        llmops_accelerator="A10-24G",
        llmops_accelerators_per_node=1,
        llmops_nodes=1,
    )
    assert validate_answers(SPEC, extra_vars) == []
    result = run_render(
        "local", str(tmp_path), "-e", json.dumps(extra_vars), "--tags", "serve", plan=False, playbook="site.yml"
    )
    assert result.returncode != 0
    assert "does not fit" in result.stdout + result.stderr
    assert rendered_files(str(tmp_path)) == []


def test_pod_sizing_follows_the_survey_shape(tmp_path):
    """4 Ascend NPUs per pod on inventories/local (sized per accelerator: 32Gi each): the pod gets 4 x 32Gi,
    which holds its 4 x 16Gi of /dev/shm, and renders."""
    extra_vars = answers("ascend-vllm")
    assert validate_answers(SPEC, extra_vars) == []
    result = run_render(
        "local", str(tmp_path), "-e", json.dumps(extra_vars), "--tags", "serve", plan=False, playbook="site.yml"
    )
    assert result.returncode == 0, result.stdout[-2000:]
    objects = manifests(str(tmp_path))
    (workload,) = objects.get("Deployment", []) + objects.get("StatefulSet", [])
    pod = workload["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert (limits["huawei.com/Ascend910"], limits["memory"], limits["cpu"]) == ("4", "128Gi", "32")
    assert [v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "dshm"] == ["64Gi"]


def test_an_explicit_memory_that_cannot_hold_shm_stops_before_anything_is_written(tmp_path):
    """A site that pins an absolute inference_server_memory keeps it: 32Gi cannot hold 4 NPUs' 64Gi of
    /dev/shm, so the build step refuses it with the numbers, and nothing is rendered."""
    extra_vars = answers("ascend-vllm")
    result = run_render(
        "local",
        str(tmp_path),
        "-e",
        json.dumps(extra_vars),
        "-e",
        json.dumps({"inference_server_memory": "32Gi"}),
        "--tags",
        "serve",
        plan=False,
        playbook="site.yml",
    )
    assert result.returncode != 0
    assert "inference_server_memory 32Gi leaves no room beside /dev/shm of 64Gi" in result.stdout + result.stderr
    assert rendered_files(str(tmp_path)) == []
