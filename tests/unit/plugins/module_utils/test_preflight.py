"""module_utils/preflight.py: the checks playbooks/preflight.yml runs before anything is touched.

The Node objects below have the shape kube-apiserver returns (status.allocatable quantities as strings,
spec.unschedulable on a cordoned node), as read from the test bed's kwok A800 nodes.
"""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import preflight
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

GOOD = {
    "llmops_engine": "sglang",
    "inference_server_engine": "sglang",
    "llmops_namespace": "deepseek",
    "inference_server_namespace": "deepseek",
    "inference_server_name": "deepseek-r1",
    "inference_server_port": "8000",
    "inference_exposure_service_port": 8000,
    "inference_exposure_node_port": 0,
    "llmops_replicas": 1,
    "inference_server_replicas": "1",
    "model_cache_storage": "host_path",
    "model_cache_host_path": "/mnt/models",
    "inference_server_host_mounts": [{"host_path": "/etc/hccn.conf", "mount_path": "/etc/hccn.conf"}],
    "inference_server_api_key_secret": "deepseek-r1-api-key",
    "inference_server_allow_unauthenticated": False,
}


def test_good_inputs_pass():
    assert preflight.check_inputs(GOOD, {"engine": "sglang"}) == []


@pytest.mark.parametrize(
    "variable,value,fragment",
    [
        ("llmops_engine", "vLLM", "names are lower case: 'vllm'"),
        ("llmops_engine", "trt", "set llmops_engine to sglang or vllm"),
        ("llmops_namespace", "Deep_Seek", "not a DNS-1123 label"),
        ("inference_server_namespace", "a" * 64, "at most 63"),
        ("inference_server_name", "-r1", "DNS-1123"),
        ("inference_server_port", 0, "between 1 and 65535"),
        ("inference_server_port", 70000, "between 1 and 65535"),
        ("inference_server_port", "abc", "not an integer"),
        ("inference_exposure_node_port", -1, "node port range"),
        ("inference_server_replicas", 0, "1 or more"),
        ("llmops_replicas", "-2", "1 or more"),
        ("model_cache_host_path", "/", "would mount the node's own /"),
        ("model_cache_host_path", "/var/lib/kubelet/pods", "/var/lib/kubelet"),
        ("model_cache_host_path", "/etc/../etc", "own /etc"),
        ("model_cache_host_path", "models", "not an absolute path"),
        ("inference_server_host_mounts", [{"host_path": "/var/run/docker.sock"}], "host_mounts[0].host_path"),
        ("inference_server_host_mounts", "/mnt", "must be a list"),
        ("inference_server_api_key_secret", "", "inference_server_allow_unauthenticated: true"),
        ("inference_server_api_key_secret", "Bad_Name", "not a valid Secret name"),
    ],
)
def test_each_bad_input_names_the_variable_and_the_fix(variable, value, fragment):
    problems = preflight.check_inputs(dict(GOOD, **{variable: value}))
    assert len(problems) == 1, problems
    assert variable.split("[")[0] in problems[0] and fragment in problems[0]


def test_unauthenticated_is_an_explicit_choice():
    values = dict(GOOD, inference_server_api_key_secret="", inference_server_allow_unauthenticated="true")
    assert preflight.check_inputs(values) == []


def test_plan_engine_must_match():
    problems = preflight.check_inputs(dict(GOOD, inference_server_engine="vllm"), {"engine": "sglang"})
    assert len(problems) == 1 and "computed for engine sglang" in problems[0]


def test_only_given_variables_are_checked():
    assert preflight.check_inputs({}) == []
    with pytest.raises(LlmopsError):
        preflight.check_inputs(["not", "a", "dict"])


def test_groups():
    assert preflight.check_groups({"all": ["h"], "ungrouped": [], "k8s_control": ["localhost"]}) == []
    problems = preflight.check_groups({"all": [], "k8s-control": ["localhost"]})
    assert any("looks like a misspelling of 'k8s_control'" in p for p in problems)
    assert any("'k8s_control' is missing or empty" in p for p in problems)
    assert preflight.check_groups({"k8s_control": ["x"], "gpu_node": ["g"]})[0].startswith("inventory group 'gpu_node'")
    # A prepare-only run needs no API host; an enabled host role needs its group.
    assert preflight.check_groups({"gpu_nodes": ["g"]}, run_tags=["prepare"]) == []
    problems = preflight.check_groups({"k8s_control": ["x"]}, {"nvidia_driver_enabled": "yes"})
    assert problems == [
        "nvidia_driver_enabled is true but inventory group 'gpu_nodes' is missing or empty: add the hosts to "
        "gpu_nodes, or set nvidia_driver_enabled: false"
    ]
    # Unrelated groups are the user's business.
    assert preflight.check_groups({"k8s_control": ["x"], "storage": ["s"]}) == []


def node(name, gpus, rdma=None, cordoned=False):
    allocatable = {"cpu": "128", "memory": "2Ti", "nvidia.com/gpu": str(gpus)}
    allocatable.update(rdma or {})
    return {"metadata": {"name": name}, "spec": {"unschedulable": cordoned}, "status": {"allocatable": allocatable}}


PLAN = {"nodes": 2, "accelerators_per_node": 8, "accelerators_used": 16}


def test_nodes_hold_the_plan():
    nodes = [node("a800-0", 8, {"rdma/ib": "1k"}), node("a800-1", 8, {"rdma/ib": "1k"})]
    assert preflight.check_nodes(nodes, PLAN, "nvidia.com/gpu", {"rdma/ib": 1}) == []


def test_lws_larger_than_the_nodes_that_can_hold_it():
    nodes = [node("a800-0", 8), node("a800-1", 4), node("a800-2", 8, cordoned=True)]
    problems = preflight.check_nodes(nodes, PLAN, "nvidia.com/gpu")
    assert len(problems) == 1
    assert "needs 2 node(s) with 8 allocatable nvidia.com/gpu" in problems[0] and "has 1" in problems[0]
    assert "a800-2: 8 nvidia.com/gpu (cordoned)" in problems[0] and "llmops_nodes" in problems[0]


def test_rdma_missing_on_a_node():
    nodes = [node("a800-0", 8, {"rdma/ib": "1"}), node("a800-1", 8)]
    problems = preflight.check_nodes(nodes, PLAN, "nvidia.com/gpu", {"rdma/ib": 1})
    assert "a800-1: 8 nvidia.com/gpu; lacks 0 rdma/ib of 1" in problems[0]


def test_replicas_multiply_the_nodes():
    nodes = [node("n%d" % i, 8) for i in range(3)]
    assert preflight.check_nodes(nodes, dict(PLAN, replicas=2), "nvidia.com/gpu") != []
    with pytest.raises(LlmopsError):
        preflight.check_nodes(nodes, "plan", "nvidia.com/gpu")


def test_secret_and_version():
    assert (
        preflight.check_secret({"data": {"HF_TOKEN": "eA=="}}, "hf", ["HF_TOKEN"], "ns", "model_cache_hf_token_secret")
        == []
    )
    missing = preflight.check_secret(None, "hf", ["HF_TOKEN"], "ns", "model_cache_hf_token_secret")
    assert "Secret ns/hf (model_cache_hf_token_secret) does not exist" in missing[0]
    wrong_key = preflight.check_secret({"data": {"token": "eA=="}}, "hf", ["HF_TOKEN"], "ns", "v")
    assert "has no key HF_TOKEN (it has token)" in wrong_key[0]
    assert preflight.check_version("Volcano", "v1.9.0", "1.7", "volcano_enabled") == []
    assert "v1.6.0 is installed" in preflight.check_version("Volcano", "v1.6.0", "1.7", "volcano_enabled")[0]
    assert "not installed" in preflight.check_version("Volcano", "", "1.7", "volcano_enabled")[0]


def test_default_resource_comes_from_the_plan_vendor():
    nodes = [node("a800-0", 8), node("a800-1", 8)]
    assert preflight.check_nodes(nodes, dict(PLAN, accelerator={"id": "A800-80G"}), "") == []
    ascend = preflight.check_nodes(nodes, dict(PLAN, accelerator={"id": "Ascend-910B-64G"}), "")
    assert "8 allocatable huawei.com/Ascend910" in ascend[0]


def test_the_npu_address_plan_is_judged_before_stage_one():
    plan = {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.14"}}
    problems = preflight.check_hccn_plan(plan, 8, {"netmask": "255.255.255.0"})
    assert len(problems) == 1
    assert problems[0].startswith(
        "ascend_npu_network_plan: NPU addresses used twice: 10.197.90.14 by node01:4, node02:0;"
    )
    assert preflight.check_hccn_plan({}, 8, {}) == []
    assert preflight.check_hccn_plan({"node01": {"base": "10.0.0.10"}}, "x", {})[0].startswith(
        "ascend_npu_network_plan: "
    )
