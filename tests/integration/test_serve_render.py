"""Real ansible-playbook runs of playbooks/serve.yml in render mode, one per example inventory.

The plan comes from tests/integration/fixtures/plans/<inventory>.yml through serving_plan_override
until llmops.inference.parallelism_plan is merged; test_plan_module_path runs the module path once
the module is importable. Rendered objects are checked against the real upstream CRD schemas in
../shared/crds (LeaderWorkerSet, PodGroup, ServiceMonitor, Route) with jsonschema
(helpers in render_helpers.py, shared with test_openshift_render.py).
"""

import glob
import importlib.util
import json
import os
import sys

import pytest
from render_helpers import (
    COLLECTIONS,
    engine_argv,
    ensure_collection_link,
    load_plan,
    read,
    rendered,
    validate_custom_resources,
)
from render_helpers import run_render as run_serve

INVENTORIES = (
    "local",
    "deepseek-r1-2x8-a800-sglang",
    "distill-1gpu",
    "qwen3-235b-vllm-tp8",
    "qwen3-235b-vllm-2node-ray",
    "ascend-910b",
    "testbed",
)
API_KEY = "sk-test-9f1c2e7d4b8a-never-printed"
# The test bed serves the DeepSeek-R1 inventory's model on the same simulated 2 x 8 A800: the same plan.
PLAN_OF = {"testbed": "deepseek-r1-2x8-a800-sglang"}


def plan_of(inventory):
    return load_plan(PLAN_OF.get(inventory, inventory))


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    results = {}
    for inventory in INVENTORIES:
        folder = str(tmp_path_factory.mktemp(inventory))
        result = run_serve(
            inventory,
            folder,
            "-e",
            json.dumps({"serving_plan_override": plan_of(inventory)}),
            "-e",
            "inference_server_api_key=%s" % API_KEY,
            "-e",
            "inference_server_render_api_key_secret=true",
            plan=False,
        )
        results[inventory] = (result, folder)
    return results


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_render_succeeds_and_keeps_the_key_out_of_the_output(renders, inventory):
    result, folder = renders[inventory]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert API_KEY not in output
    objects = rendered(folder)
    # The key went where it belongs: only into the Secret (rendered because we asked for it).
    secret = objects["Secret"][0]
    assert secret["stringData"]["api-key"] == API_KEY
    files_with_key = [p for p in glob.glob(os.path.join(folder, "*", "*.yaml")) if API_KEY in read(p)]
    assert len(files_with_key) == 1 and "/inference_server_secrets/" in files_with_key[0]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_rendered_objects_are_sound(renders, inventory):
    _result, folder = renders[inventory]
    objects = rendered(folder)
    validate_custom_resources(objects)
    text = "".join(read(path) for path in glob.glob(os.path.join(folder, "*", "*.yaml")))
    assert "privileged: true" not in text
    assert objects["Namespace"][0]["metadata"]["name"]
    assert objects["Service"][0]["spec"]["selector"]["llmops.io/role"] == "leader"


def test_deepseek_r1_lws_fields(renders):
    _result, folder = renders["deepseek-r1-2x8-a800-sglang"]
    objects = rendered(folder)
    assert validate_custom_resources(objects) == 2
    lws = objects["LeaderWorkerSet"][0]
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert lws["spec"]["startupPolicy"] == "LeaderCreated"
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2 and template["restartPolicy"] == "RecreateGroupOnPodRestart"
    argv = template["workerTemplate"]["spec"]["containers"][0]["command"]
    assert argv[argv.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):20000"
    # The worker-index label through fieldRef (issue 10 #13), not $(LWS_WORKER_INDEX) (LWS >= v0.6.0 only).
    assert argv[argv.index("--node-rank") + 1] == "$(LLMOPS_WORKER_INDEX)"
    assert argv[argv.index("--tp-size") + 1] == "16"
    assert template["leaderTemplate"]["spec"]["schedulerName"] == "volcano"
    assert objects["PodGroup"][0]["spec"]["minMember"] == 2
    assert "Deployment" in objects and objects["Deployment"][0]["metadata"]["name"] == "deepseek-r1-webui"


WORKLOADS = ("Deployment", "StatefulSet", "LeaderWorkerSet")
VENDOR = {"ascend-910b": ("huawei.com/Ascend910", "accelerator")}


def _engine_pods(objects):
    """(role, pod template) of the engine workload."""
    workload = next(
        obj
        for kind in WORKLOADS
        for obj in objects.get(kind, [])
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "inference-server"
    )
    spec = workload["spec"]
    if "leaderWorkerTemplate" in spec:
        return workload, [
            ("leader", spec["leaderWorkerTemplate"]["leaderTemplate"]),
            ("worker", spec["leaderWorkerTemplate"]["workerTemplate"]),
        ]
    return workload, [("single", spec["template"])]


def _hardened(pod_spec, allow_ipc_lock):
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    for container in pod_spec["containers"] + pod_spec.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"].get("add", [])) <= ({"IPC_LOCK"} if allow_ipc_lock else set())


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_engine_pods_survive_a_real_cluster(renders, inventory):
    """Issue 10 (#1, #2, #13, #14, #15, Medium): what a real kubelet, scheduler and LWS would do with the render."""
    _result, folder = renders[inventory]
    objects = rendered(folder)
    plan = plan_of(inventory)
    multi_node = plan["nodes"] > 1
    text = "".join(read(path) for path in glob.glob(os.path.join(folder, "*", "*.yaml")))
    assert "LWS_WORKER_INDEX" not in text
    workload, pods = _engine_pods(objects)
    resource, label = VENDOR.get(inventory, ("nvidia.com/gpu", "nvidia.com/gpu.product"))
    for role, pod in pods:
        spec = pod["spec"]
        engine = spec["containers"][0]
        _hardened(spec, allow_ipc_lock=any(k.startswith("rdma/") for k in engine["resources"]["limits"]))
        # Placement: the planned accelerator's nodes, their taint tolerated.
        assert {"key": resource, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        required = (
            spec.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        )
        keys = {e["key"] for e in required["nodeSelectorTerms"][0]["matchExpressions"]} if required else set()
        assert label in keys | set(spec.get("nodeSelector", {}))
        # Init containers: requests = limits (Guaranteed QoS); multi-node pods only wait for a staged cache.
        for init in spec.get("initContainers", []):
            assert init["resources"]["requests"] == init["resources"]["limits"]
            if multi_node:
                assert init["command"][-1] == "wait"
        # Shutdown: drain in-flight generations.
        assert spec["terminationGracePeriodSeconds"] >= 600 and "preStop" in engine["lifecycle"]
        if role == "worker":
            continue
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert engine[probe]["timeoutSeconds"] >= 20
        budget = engine["startupProbe"]["failureThreshold"] * engine["startupProbe"]["periodSeconds"]
        if multi_node or plan["model"]["parameters"] > 100e9:
            assert budget >= 3600, budget
        if multi_node and plan["engine"] == "sglang":
            argv = engine_argv(engine)
            assert argv[argv.index("--dist-timeout") + 1] == str(budget)
    # A PodDisruptionBudget over the engine pods.
    pdb = objects["PodDisruptionBudget"][0]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pods[0][1]["metadata"]["labels"].items()
    # Every cache Job is hardened and Guaranteed; a multi-node group never downloads inside itself.
    for job in objects.get("Job", []):
        spec = job["spec"]["template"]["spec"]
        if job["metadata"]["labels"].get("app.kubernetes.io/component") == "nccl-preflight":
            # the NCCL pre-flight is the engine's pod spec: hardened like it, IPC_LOCK where RDMA is requested
            engine_limits = pods[-1][1]["spec"]["containers"][0]["resources"]["limits"]
            _hardened(spec, allow_ipc_lock=any(k.startswith("rdma/") for k in engine_limits))
            assert multi_node and job["spec"]["completions"] == plan["nodes"]
            continue
        _hardened(spec, allow_ipc_lock=False)
        assert spec["containers"][0]["resources"]["requests"] == spec["containers"][0]["resources"]["limits"]
    if multi_node and "volumeClaimTemplates" in workload["spec"]["leaderWorkerTemplate"]:
        claims = {o["metadata"]["name"] for o in objects["PersistentVolumeClaim"]}
        name = workload["metadata"]["name"]
        assert {"model-cache-%s-0" % name, "model-cache-%s-0-1" % name} <= claims
        assert len([j for j in objects["Job"] if "-stage-" in j["metadata"]["name"]]) == plan["nodes"]


def test_testbed_cache_is_staged_on_each_node(renders):
    _result, folder = renders["testbed"]
    objects = rendered(folder)
    stage = [j for j in objects["Job"] if "-stage-" in j["metadata"]["name"]]
    assert sorted(j["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"] for j in stage) == [
        "gpu-a800-0",
        "gpu-a800-1",
    ]
    lws = objects["LeaderWorkerSet"][0]
    spec = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    expressions = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"]
    assert {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-a800-0", "gpu-a800-1"]} in expressions


def test_lws_version_without_claim_templates_is_refused(tmp_path):
    result = run_serve("deepseek-r1-2x8-a800-sglang", str(tmp_path), "-e", "inference_server_lws_version=v0.5.1")
    assert result.returncode != 0
    assert "LeaderWorkerSet v0.5.1 has no volumeClaimTemplates" in " ".join((result.stdout + result.stderr).split())


def test_two_node_vllm_uses_ray(renders):
    _result, folder = renders["qwen3-235b-vllm-2node-ray"]
    lws = rendered(folder)["LeaderWorkerSet"][0]
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["command"][2]
    worker = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["command"][2]
    assert "ray start --head --port=6379" in leader and "--distributed-executor-backend ray" in leader
    assert 'ray start --address="${LWS_LEADER_ADDRESS}":6379 --block' in worker


def test_render_without_the_key_variable_leaves_the_secret_out(tmp_path):
    result = run_serve("local", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Secret" not in rendered(str(tmp_path))
    assert "kubectl -n llmops-demo create secret generic deepseek-r1-distill-1-5b-api-key" in " ".join(
        result.stdout.split()
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-e", "llmops_engine=tgi"], "unknown engine 'tgi'"),
        (
            ["-e", "model_cache_source=s3", "-e", "model_cache_s3_uri=s3://models/x"],
            "model source s3 needs credentials",
        ),
        (["-e", '{"inference_server_extra_args": ["--tp-size", "2"]}'], "may not set --tp-size"),
        (["-e", "inference_server_extra_args=--tp 2"], "must be a list"),
    ],
)
def test_bad_input_fails_before_anything_is_rendered(tmp_path, extra, message):
    result = run_serve("local", str(tmp_path), *extra)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split())
    assert glob.glob(os.path.join(str(tmp_path), "*", "*.yaml")) == []


PLAN_MODULE = "ansible_collections.llmops.inference.plugins.modules.parallelism_plan"


def _plan_module_present():
    ensure_collection_link()
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    try:
        return importlib.util.find_spec(PLAN_MODULE) is not None
    except ImportError:
        return False


needs_plan_module = pytest.mark.skipif(
    not _plan_module_present(), reason="llmops.inference.parallelism_plan is not merged into this branch yet"
)


@needs_plan_module
def test_plan_module_path_renders(tmp_path):
    result = run_serve("local", str(tmp_path), plan=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Deployment" in rendered(str(tmp_path))


@needs_plan_module
def test_tensor_parallel_override_not_dividing_heads_fails_first(tmp_path):
    # DeepSeek-R1-Distill-Qwen-1.5B has 12 attention heads and 2 KV heads; 5 divides neither.
    result = run_serve("local", str(tmp_path), "-e", '{"serving_plan_overrides": {"tensor_parallel": 5}}', plan=False)
    assert result.returncode != 0
    assert "head" in result.stdout.lower()
    assert glob.glob(os.path.join(str(tmp_path), "*", "*.yaml")) == []
