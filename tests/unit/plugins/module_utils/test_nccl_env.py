"""NCCL/GLOO env of the pods by network mode (nccl_env.py, serving.resolve_fabric) and RDMA resource names.

The facts shapes are rdma_check's return (recorded from real ibv_devinfo / sysfs output in
tests/unit/fixtures/rdma); no HCA exists here, so the facts are written out in the shape the module returns.
"""

import os

import pytest
import yaml

from ansible_collections.llmops.inference.plugins.module_utils import nccl_env, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def _roce_facts(**extra):
    port = {"port": 1, "state": "ACTIVE", "phys_state": "LinkUp", "link_layer": "Ethernet", "roce_v2_ipv4_gid_index": 3}
    facts = {
        "devices": [{"name": "mlx5_0", "ports": [dict(port)]}, {"name": "mlx5_1", "ports": [dict(port)]}],
        "socket_ifname": "bond0",
        "gpudirect_rdma": True,
    }
    facts.update(extra)
    return facts


def test_roce_traffic_class_and_service_level_come_from_the_facts():
    env = nccl_env.nccl_env_from_rdma(_roce_facts(traffic_class=106, service_level=3))
    assert env["NCCL_IB_TC"] == "106" and env["NCCL_IB_SL"] == "3"
    assert env["NCCL_IB_HCA"] == "=mlx5_0:1,mlx5_1:1"
    # Without them in the facts NCCL keeps its defaults: nothing is guessed.
    assert "NCCL_IB_TC" not in nccl_env.nccl_env_from_rdma(_roce_facts())


@pytest.mark.parametrize(
    "value, expected",
    [("mlx5_0,mlx5_1", "=mlx5_0,mlx5_1"), ("=mlx5_1", "=mlx5_1"), ("^mlx5_2", "^mlx5_2"), ("", "")],
)
def test_hca_lists_are_exact_match(value, expected):
    """A bare mlx5_1 is a prefix match in NCCL and also selects mlx5_10..mlx5_17 on 18-HCA hosts."""
    assert nccl_env.exact_hca_list(value) == expected


def test_pod_network_uses_the_pod_interface():
    env = nccl_env.network_env({"NCCL_IB_HCA": "mlx5_0"}, "pod")
    assert env == {"NCCL_IB_HCA": "=mlx5_0", "NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"}


def test_host_network_uses_the_host_nic_and_refuses_eth0_from_the_pod_world():
    env = nccl_env.network_env({}, "host", host_ifname="bond0")
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "bond0"
    with pytest.raises(LlmopsError, match="NCCL_SOCKET_IFNAME=eth0 does not match the host network"):
        nccl_env.network_env({"NCCL_SOCKET_IFNAME": "eth0"}, "host", host_ifname="bond0")
    with pytest.raises(LlmopsError, match="needs the host's interface name"):
        nccl_env.network_env({}, "host")


def test_pod_network_refuses_the_hosts_nic():
    with pytest.raises(LlmopsError, match="GLOO_SOCKET_IFNAME=bond0 does not match the pod network"):
        nccl_env.network_env({"GLOO_SOCKET_IFNAME": "bond0"}, "pod")


def test_rdma_requests_must_be_announced_by_the_device_plugin():
    with pytest.raises(LlmopsError, match="request rdma/roce but the RDMA device plugin announces only rdma/ib"):
        serving.check_rdma_resources(
            {"rdma/roce": 1},
            [{"resourceName": "ib", "selectors": {"linkTypes": ["infiniband"]}}],
        )
    assert serving.check_rdma_resources({"rdma/roce": 1, "cpu": "4"}) == ["rdma/roce"]
    assert serving.rdma_plugin_resource_names()["rdma/roce"] == ["ether"]


def test_rdma_requests_against_node_allocatable():
    nodes = [
        {"metadata": {"name": "gpu-1"}, "status": {"allocatable": {"rdma/ib": "0"}}},
        {"metadata": {"name": "gpu-2"}, "status": {"allocatable": {"rdma/ib": "4"}}},
        {"metadata": {"name": "cpu-1"}, "status": {"allocatable": {"cpu": "8"}}},
    ]
    assert serving.check_rdma_resources({"rdma/ib": 2}, nodes=nodes[1:], pods=1) == ["rdma/ib"]
    with pytest.raises(LlmopsError, match="2 engine pods each need rdma/ib: 2, but only 1 nodes"):
        serving.check_rdma_resources({"rdma/ib": 2}, nodes=nodes, pods=2)


def test_the_module_default_matches_the_rdma_device_plugin_role_default():
    with open(os.path.join(ROOT, "roles", "rdma_device_plugin", "defaults", "main.yml")) as handle:
        role_default = yaml.safe_load(handle)["rdma_device_plugin_resources"]
    assert role_default == list(serving.RDMA_PLUGIN_DEFAULT_RESOURCES)
