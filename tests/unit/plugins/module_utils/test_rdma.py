"""rdma sysfs walker, tool parsers and judges on fake sysfs trees and tool layouts (fixtures/rdma/README.md)."""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import rdma
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.nccl_env import (
    as_pod_env,
    nccl_env_from_rdma,
)


def test_cx6_ib_four_ports(sysfs):
    devices = rdma.read_sysfs(sysfs("cx6_ib_hdr_4ports.json"))
    assert [d["name"] for d in devices] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]
    port = devices[0]["ports"][0]
    assert (port["state"], port["phys_state"], port["rate_gbps"], port["link_layer"]) == (
        "ACTIVE",
        "LinkUp",
        200.0,
        "InfiniBand",
    )
    assert port["roce_v2_ipv4_gid_index"] is None and port["netdev"] == "ib0"
    assert rdma.judge_ports(devices, min_rate_gbps=200) == []
    assert rdma.host_gid_index(devices) is None
    env = nccl_env_from_rdma({"devices": devices, "gpudirect_rdma": True, "socket_ifname": "bond0"})
    assert env == {
        "NCCL_IB_DISABLE": "0",
        "NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1",
        "NCCL_NET_GDR_LEVEL": "PHB",
        "NCCL_SOCKET_IFNAME": "bond0",
        "GLOO_SOCKET_IFNAME": "bond0",
    }


def test_roce_mixed_gid_table_picks_v2_ipv4(sysfs):
    devices = rdma.read_sysfs(sysfs("roce_v2_mixed_gid_table.json"))
    port = devices[1]["ports"][0]
    assert [(g["index"], g["type"]) for g in port["gids"]][:2] == [(0, "IB/RoCE v1"), (1, "RoCE v2")]
    assert port["gids"][5]["ipv4"] == "10.0.11.1" and port["roce_v2_ipv4_gid_index"] == 5
    assert len(port["gids"]) == 6  # the all-zero entry 6 is unused
    assert port["netdev"] == "ens1f1np1"
    assert rdma.host_gid_index(devices) == 5
    env = nccl_env_from_rdma(
        {"devices": devices, "socket_ifname": "eth0"}, {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": None}
    )
    assert env["NCCL_IB_GID_INDEX"] == "5" and env["NCCL_IB_HCA"] == "=mlx5_0:1,mlx5_1:1"
    assert "GLOO_SOCKET_IFNAME" not in env and "NCCL_NET_GDR_LEVEL" not in env
    assert as_pod_env({"B": "1", "A": "2"}) == [{"name": "A", "value": "2"}, {"name": "B", "value": "1"}]


def test_port_down_and_slow_are_reasons(sysfs):
    devices = rdma.read_sysfs(sysfs("cx6_ib_port_down_and_slow.json"))
    reasons = rdma.judge_ports(devices, min_rate_gbps=200)
    assert reasons == [
        "mlx5_2 port 1 is down (state DOWN, physical state Disabled)",
        "mlx5_3 port 1 runs at 100 Gb/sec (4X EDR), slower than the expected 200 Gb/s",
    ]
    env = nccl_env_from_rdma({"devices": devices})
    assert env["NCCL_IB_HCA"] == "=mlx5_0:1,mlx5_1:1,mlx5_3:1"  # active ports only


def test_roce_without_ipv4_and_differing_indexes(sysfs):
    def drop_ipv4(layout):
        for index in ("4", "5"):
            del layout["mlx5_1"]["ports"]["1"]["gids"][index]

    devices = rdma.read_sysfs(sysfs("roce_v2_mixed_gid_table.json", drop_ipv4))
    assert "mlx5_1 port 1 (RoCE) has no RoCE v2 GID with an IPv4 address" in rdma.judge_ports(devices)[0]
    with pytest.raises(LlmopsError, match="disagree"):
        nccl_env_from_rdma({"devices": devices})


def test_gid_index_differs_inside_host(sysfs):
    def shift(layout):
        gids = layout["mlx5_1"]["ports"]["1"]["gids"]
        gids["3"], gids["5"] = gids["5"], gids["3"]  # IPv4 v2 at 3 on mlx5_1, at 5 on mlx5_0

    with pytest.raises(LlmopsError, match="mlx5_0:1=5, mlx5_1:1=3"):
        rdma.host_gid_index(rdma.read_sysfs(sysfs("roce_v2_mixed_gid_table.json", shift)))


def test_cross_host_gid_compare():
    assert rdma.compare_gid_indexes({"a": 3, "b": 3, "c": None}) == []
    reasons = rdma.compare_gid_indexes({"node1": 3, "node2": 5, "node3": 3})
    assert "index 3 on node1, node3; index 5 on node2" in reasons[0]


def test_no_devices_and_helpers(tmp_path):
    assert rdma.read_sysfs(str(tmp_path)) == []
    assert nccl_env_from_rdma({"devices": []}) == {"NCCL_IB_DISABLE": "1"}
    assert rdma.parse_rate("400 Gb/sec (4X NDR)") == 400.0 and rdma.parse_rate("garbage") is None
    assert rdma.gid_ipv4("fe80:0000:0000:0000:0000:0000:0000:0001") is None
    assert rdma.default_route_ifname("Iface\tDestination\tGateway\nbond0\t00000000\t0100000A\n") == "bond0"
    assert rdma.dmabuf_possible("6.8.0-45-generic", "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550")
    assert not rdma.dmabuf_possible("5.4.0", "Open Kernel Module")
    (tmp_path / "module" / "nvidia_peermem").mkdir(parents=True)
    assert rdma.peermem_loaded(str(tmp_path))
    assert rdma.peermem_loaded("/nonexistent", "Module Size Used by\nnv_peer_mem 16384 0\n")
    with pytest.raises(LlmopsError, match="dict"):
        nccl_env_from_rdma(None)
    with pytest.raises(LlmopsError, match="overrides"):
        nccl_env_from_rdma({}, ["x"])


def test_tool_parsers(fixture_text):
    cas = rdma.parse_ibstat(fixture_text("rdma", "ibstat_cx6_ib.txt"))
    assert cas["mlx5_0"]["ports"][1] == {
        "state": "Active",
        "physical_state": "LinkUp",
        "rate_gbps": 200.0,
        "base_lid": "12",
        "lmc": "0",
        "sm_lid": "1",
        "capability_mask": "0xa651e848",
        "port_guid": "0x0c42a10300a1b2c0",
        "link_layer": "InfiniBand",
    }
    assert cas["mlx5_1"]["ports"][1]["state"] == "Down"
    devs = rdma.parse_ibv_devinfo(fixture_text("rdma", "ibv_devinfo_roce.txt"))
    assert devs["mlx5_1"]["ports"][1]["state"] == "PORT_ACTIVE" and devs["mlx5_1"]["fw_ver"] == "22.36.1010"
    assert rdma.parse_ibv_devinfo("No IB devices found\n") == {}
    for parser in (rdma.parse_ibstat, rdma.parse_ibv_devinfo):
        with pytest.raises(LlmopsError, match="Cannot read"):
            parser("segmentation fault\n")
