# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DeepEP's NVSHMEM environment: derived from the same RDMA facts and GID index as NCCL's, refused on a fabric
fabric_check measured as rail-only.

No HCA exists here: the RDMA facts come from the real sysfs walker (rdma.read_sysfs) over the recorded sysfs
layouts of tests/unit/fixtures/rdma; the NVSHMEM variable names were read from the nvidia-nvshmem-cu12 3.8.0
wheel's libraries (tests/unit/fixtures/nvshmem/env_names.json).
"""

import copy
import json
import os

import pytest
from serving_cases import case

from ansible_collections.llmops.inference.plugins.module_utils import engine_cli, nccl_env, rdma, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan as make_plan

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
with open(os.path.join(FIXTURES, "nvshmem", "env_names.json")) as _handle:
    NVSHMEM_NAMES = set(json.load(_handle)["variables"])


def test_roce_nvshmem_takes_nccls_gid_index_and_ports(sysfs):
    devices = rdma.read_sysfs(sysfs("roce_v2_mixed_gid_table.json"))
    facts = {"devices": devices, "socket_ifname": "bond0", "traffic_class": 106, "service_level": 3}
    nccl = nccl_env.nccl_env_from_rdma(facts)
    env = nccl_env.nvshmem_env_from_rdma(facts)
    assert env["NVSHMEM_IB_GID_INDEX"] == nccl["NCCL_IB_GID_INDEX"] == "5"
    assert env["NVSHMEM_HCA_LIST"] == "mlx5_0:1,mlx5_1:1" and nccl["NCCL_IB_HCA"] == "=" + env["NVSHMEM_HCA_LIST"]
    assert env["NVSHMEM_IB_TRAFFIC_CLASS"] == "106" and env["NVSHMEM_IB_SL"] == "3"
    assert env["NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME"] == "bond0"
    assert set(env) <= NVSHMEM_NAMES  # every name is one the NVSHMEM libraries read


def test_infiniband_has_no_gid_index_and_active_ports_only(sysfs):
    env = nccl_env.nvshmem_env_from_rdma({"devices": rdma.read_sysfs(sysfs("cx6_ib_port_down_and_slow.json"))})
    assert env == {"NVSHMEM_HCA_LIST": "mlx5_0:1,mlx5_1:1,mlx5_3:1"}


@pytest.mark.parametrize(
    "nccl, message",
    [
        ({"NCCL_IB_DISABLE": "1"}, "NCCL_IB_DISABLE=1"),
        ({"NCCL_IB_DISABLE": "0"}, "no NCCL_IB_HCA"),
    ],
)
def test_no_rdma_no_deepep(nccl, message):
    with pytest.raises(LlmopsError, match="DeepEP \\(NVSHMEM\\) across nodes needs RDMA.*%s" % message):
        nccl_env.nvshmem_env(nccl)


def test_an_exclusion_list_stays_an_exclusion_and_a_disagreeing_twin_is_refused():
    assert nccl_env.nvshmem_env({"NCCL_IB_HCA": "^=mlx5_4:1"})["NVSHMEM_HCA_LIST"] == "^mlx5_4:1"
    with pytest.raises(LlmopsError, match="NVSHMEM_IB_GID_INDEX=0 disagrees with 3"):
        nccl_env.with_nvshmem({"NCCL_IB_HCA": "=mlx5_0:1", "NCCL_IB_GID_INDEX": "3", "NVSHMEM_IB_GID_INDEX": "0"})


H100 = {"accelerator": "H100-80G", "accelerators_per_node": 8, "inter_node_link": "roce"}
DEEPEP = dict(
    H100,
    model="deepseek-ai/DeepSeek-R1",
    nodes=2,
    tensor_parallel=16,
    expert_parallel=16,
    attention_data_parallel=16,
    cuda_graph_max_bs=128,
    fabric_shape="all-to-all",
)
IMAGE = "docker.io/lmsysorg/sglang:v0.5.23"
SHAPE_ALL = {"shape": "all-to-all", "cross_rail_reachable": 56, "cross_rail_pairs": 56}
SHAPE_RAIL = {"shape": "rail-only", "cross_rail_reachable": 0, "cross_rail_pairs": 56}


def _render(sysfs, request=None, image=IMAGE, **config_extra):
    request = DEEPEP if request is None else request
    config, _plan, cache = case("deepseek-r1-2x8-a800-sglang")
    config = copy.deepcopy(config)
    facts = {"devices": rdma.read_sysfs(sysfs("roce_v2_mixed_gid_table.json")), "socket_ifname": "bond0"}
    # what prepare_nodes hands the pods: the NCCL env without the host's socket interface
    pods = {k: v for k, v in nccl_env.nccl_env_from_rdma(facts).items() if not k.endswith("SOCKET_IFNAME")}
    config.update(engine="sglang", image=image, nccl_env=pods, memory="", cpu="")
    config.update(config_extra)
    plan = make_plan(dict(request, engine="sglang", engine_image=image))
    return plan, serving.server_manifests(config, plan, cache["layout"])


def _envs(objects):
    lws = [obj for obj in objects if obj["kind"] == "LeaderWorkerSet"][0]["spec"]["leaderWorkerTemplate"]
    return [
        {item["name"]: item.get("value") for item in template["spec"]["containers"][0]["env"]}
        for template in (lws["leaderTemplate"], lws["workerTemplate"])
    ]


def test_deepep_pods_get_nvshmem_twins_of_their_nccl_env(sysfs):
    plan, objects = _render(sysfs, fabric=SHAPE_ALL)
    assert plan["moe_all_to_all"] == "deepep"
    for env in _envs(objects):
        assert env["NVSHMEM_IB_GID_INDEX"] == env["NCCL_IB_GID_INDEX"] == "5"
        assert "=" + env["NVSHMEM_HCA_LIST"] == env["NCCL_IB_HCA"]
        # the pod network's interface, like NCCL's bootstrap (network_env)
        assert env["NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "eth0"
    host = _envs(_render(sysfs, fabric=SHAPE_ALL, host_network=True, host_ifname="bond0")[1])[0]
    assert host["NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME"] == "bond0"


def test_no_nvshmem_without_deepep(sysfs):
    plan, objects = _render(sysfs, request=dict(DEEPEP, moe_all_to_all="none"))
    assert plan["moe_all_to_all"] == "none"
    assert not [name for env in _envs(objects) for name in env if name.startswith("NVSHMEM_")]


def test_a_deepep_plan_is_refused_on_a_rail_only_fabric(sysfs):
    with pytest.raises(LlmopsError, match="the plan uses DeepEP across nodes, but the fabric is rail-only"):
        _render(sysfs, fabric=SHAPE_RAIL)


def test_the_image_must_run_the_release_the_plan_was_sized_for(sysfs):
    config, _plan, cache = case("deepseek-r1-2x8-a800-sglang")
    plan = make_plan(dict(DEEPEP, engine="sglang", engine_version="0.5.6.post2"))
    config = dict(copy.deepcopy(config), image=IMAGE, nccl_env={"NCCL_IB_HCA": "=mlx5_0:1"}, memory="", cpu="")
    with pytest.raises(LlmopsError, match="computed for sglang 0.5.6.post2's memory rule, but the image"):
        serving.server_manifests(config, plan, cache["layout"])
    # the same rule (0.5.10 takes 0.5.6.post2's) passes
    assert engine_cli.image_version("lmsysorg/sglang:v0.5.10")[1] == "0.5.10"
    serving.server_manifests(dict(config, image="lmsysorg/sglang:v0.5.10"), plan, cache["layout"])
