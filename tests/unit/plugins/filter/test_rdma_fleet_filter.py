"""Filter llmops.inference.rdma_fleet on the facts the real rdma_check module gathers from recorded sysfs trees.

The trees are the recorded ConnectX-6 layouts of fixtures/rdma (README there: their shape comes from real
hosts; no HCA exists on this machine). Each node is one rdma_check run on its own tree, as the prepare stage
runs it on every GPU node.
"""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.inference.plugins.filter.rdma_fleet import FilterModule
from ansible_collections.llmops.inference.plugins.modules import rdma_check

rdma_fleet = FilterModule().filters()["rdma_fleet"]


@pytest.fixture
def node_facts(run, sysfs, empty_path):
    def gather(layout, extra=None):
        args = {"sysfs_root": sysfs(layout, extra), "use_tools": "never", "fail_on_problems": False}
        return run(rdma_check.main, args)

    return gather


def test_identical_nodes_share_one_env(node_facts):
    fleet = rdma_fleet({"gpu-a": node_facts("cx6_ib_hdr_4ports.json"), "gpu-b": node_facts("cx6_ib_hdr_4ports.json")})
    assert fleet["consistent"] and fleet["reasons"] == [] and fleet["hosts"] == ["gpu-a", "gpu-b"]
    assert fleet["nccl_env"]["NCCL_IB_HCA"] == "=mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1"


def test_a_node_with_a_port_down_and_a_slow_port_is_named(node_facts):
    fleet = rdma_fleet(
        {"gpu-a": node_facts("cx6_ib_hdr_4ports.json"), "gpu-b": node_facts("cx6_ib_port_down_and_slow.json")}
    )
    assert not fleet["consistent"]
    ports, rates = fleet["reasons"][:2]
    assert ports == (
        "active RDMA ports differ between the GPU nodes (mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1 on gpu-a; "
        "mlx5_0:1,mlx5_1:1,mlx5_3:1 on gpu-b)"
    )
    assert rates.startswith("port rates differ") and "mlx5_3:1=100.0Gb/s" in rates


def test_roce_nodes_with_different_gid_indexes(node_facts):
    def shift(layout):
        for hca in ("mlx5_0", "mlx5_1"):
            gids = layout[hca]["ports"]["1"]["gids"]
            gids["3"], gids["5"] = gids["5"], gids["3"]

    fleet = rdma_fleet(
        {
            "roce-a": node_facts("roce_v2_mixed_gid_table.json"),
            "roce-b": node_facts("roce_v2_mixed_gid_table.json", shift),
        }
    )
    assert fleet["reasons"] == [
        "RoCE v2 GID index differs between the GPU nodes (index 3 on roce-b; index 5 on roce-a)"
    ]


def test_ib_and_roce_mixed(node_facts):
    fleet = rdma_fleet({"a": node_facts("cx6_ib_hdr_4ports.json"), "b": node_facts("roce_v2_mixed_gid_table.json")})
    assert any(r.startswith("link layers differ") for r in fleet["reasons"])


def test_mtu_compared_when_ibv_devinfo_ran():
    def facts(mtu):
        port = {"port": 1, "state": "ACTIVE", "link_layer": "InfiniBand", "rate_gbps": 200.0}
        return {
            "devices": [{"name": "mlx5_0", "ports": [port]}],
            "tools": {"ibv_devinfo": {"mlx5_0": {"ports": {"1": {"active_mtu": mtu}}}}},
            "nccl_env": {},
        }

    assert rdma_fleet({"a": facts("4096"), "b": facts("4096")})["consistent"]
    reasons = rdma_fleet({"a": facts("4096"), "b": facts("1024")})["reasons"]
    assert reasons == ["active MTUs differ between the GPU nodes (mlx5_0:1=1024 on b; mlx5_0:1=4096 on a)"]


@pytest.mark.parametrize("bad", [{}, [], {"a": "not facts"}])
def test_bad_input_is_a_filter_error(bad):
    with pytest.raises(AnsibleFilterError):
        rdma_fleet(bad)
