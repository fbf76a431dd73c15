"""Transport truth from NCCL_DEBUG=INFO logs (module_utils/nccl_log.py).

The single-host logs are real: recorded on a 2 x H200 host by benchmarks/device/record_nccl_transport_logs.py
(NVLink P2P 324 GB/s, SHM 26.5 GB/s, NET/Socket 3.4 GB/s for a 1 GiB all-reduce; fixtures/nccl_logs/README.md).
No host with an InfiniBand or RoCE HCA exists here, so the two-host logs are written by us in the line format of
published NCCL logs (sources in the README); they are marked synthetic there.
"""

import os

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import nccl_log
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "nccl_logs")


def parsed(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return nccl_log.parse_nccl_log(handle.read())


def test_real_nvlink_log_every_channel_p2p_and_passes_nvlink():
    log = parsed("nccl-nvlink.log")
    assert log["nccl_version"] is None or log["nccl_version"].startswith("2.")
    assert log["ranks"] == {0: "vm", 1: "vm"} and log["nranks"] == 2
    assert log["summary"] == {"nvlink": 48}
    assert {c["transport"] for c in log["channels"]} == {"P2P/CUMEM"}
    assert all(c["inter_node"] is False for c in log["channels"])
    assert nccl_log.judge_transport(log, "nvlink") == (True, [])


def test_real_shm_log_fails_nvlink_naming_shm():
    log = parsed("nccl-shm.log")
    assert set(log["summary"]) == {"shm"}
    passed, reasons = nccl_log.judge_transport(log, "nvlink")
    assert not passed
    assert "run via SHM (host shared memory), not P2P (NVLink)" in reasons[0]
    assert nccl_log.judge_transport(log, "shm") == (True, [])


def test_real_socket_log_fails_with_the_transport_named():
    log = parsed("nccl-socket.log")
    assert set(log["summary"]) == {"socket"} and log["network"] == "Socket"
    passed, reasons = nccl_log.judge_transport(log, "nvlink")
    assert not passed and "NET/Socket (TCP)" in reasons[0] and "0->1" in reasons[0]
    passed, reasons = nccl_log.judge_transport(log, "shm")
    assert not passed and "NET/Socket" in reasons[0]


def test_single_host_log_cannot_prove_an_inter_node_transport():
    passed, reasons = nccl_log.judge_transport(parsed("nccl-nvlink.log"), "ib")
    assert not passed and reasons == ["the log has no inter-node channels, so NET/IB (InfiniBand) cannot be confirmed"]


def test_two_node_ib_with_gdr():
    log = parsed("nccl-2node-ib-gdr.log")
    assert log["hosts"] == ["gpu-node-a", "gpu-node-b"] and log["nranks"] == 4
    report = nccl_log.transport_report(log)
    assert report["inter_node"] == ["ib"] and report["intra_node"] == ["nvlink"]
    assert log["hcas"] == ["mlx5_0", "mlx5_1"] and log["gdr"] is True
    assert nccl_log.judge_transport(log, "ib", expect_gdr=True) == (True, [])
    # IB is not RoCE: the link layer of the HCA line decides
    passed, reasons = nccl_log.judge_transport(log, "roce")
    assert not passed and "NET/IB (InfiniBand)" in reasons[0]


def test_two_node_roce_gid_index_checked():
    log = parsed("nccl-2node-roce.log")
    assert nccl_log.transport_report(log)["inter_node"] == ["roce"] and log["gid_index"] == 3
    assert nccl_log.judge_transport(log, "roce", expected_gid_index=3) == (True, [])
    passed, reasons = nccl_log.judge_transport(log, "roce", expected_gid_index=5)
    assert not passed and reasons == ["NCCL used GID index 3, the RDMA facts give 5 (NCCL_IB_GID_INDEX)"]


def test_two_node_socket_fallback_fails_whatever_the_bandwidth():
    log = parsed("nccl-2node-ib-socket-fallback.log")
    passed, reasons = nccl_log.judge_transport(log, "ib")
    assert not passed
    assert reasons[0].startswith(
        "4 of 4 inter-node channel connections run via NET/Socket (TCP), not NET/IB (InfiniBand)"
    )
    # intra-node NVLink is still fine in that log
    assert nccl_log.judge_transport(log, "nvlink") == (True, [])


def test_two_node_ib_without_gdr_fails_only_when_gdr_expected():
    log = parsed("nccl-2node-ib-no-gdr.log")
    assert log["gdr"] is False
    assert nccl_log.judge_transport(log, "ib") == (True, [])
    passed, reasons = nccl_log.judge_transport(log, "ib", expect_gdr=True)
    assert not passed and "GPUDirect RDMA was not used" in reasons[0]


def _facts(link_layer, gid=None, state="ACTIVE"):
    port = {"port": 1, "state": state, "link_layer": link_layer, "roce_v2_ipv4_gid_index": gid}
    return {"devices": [{"name": "mlx5_0", "ports": [port]}, {"name": "mlx5_1", "ports": [dict(port)]}]}


def test_expected_from_rdma_facts():
    assert nccl_log.expected_from_rdma(_facts("InfiniBand")) == ("ib", None)
    assert nccl_log.expected_from_rdma(_facts("Ethernet", 3)) == ("roce", 3)
    assert nccl_log.expected_from_rdma(_facts("InfiniBand", state="DOWN")) == ("socket", None)
    mixed = _facts("InfiniBand")
    mixed["devices"][1]["ports"][0]["link_layer"] = "Ethernet"
    with pytest.raises(LlmopsError, match="mix link layers"):
        nccl_log.expected_from_rdma(mixed)


@pytest.mark.parametrize("bad", [None, 12, ["x"]])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(LlmopsError):
        nccl_log.parse_nccl_log(bad)
    with pytest.raises(LlmopsError):
        nccl_log.judge_transport({"channels": []}, "infiniband")


def test_empty_log_fails_with_a_hint():
    assert nccl_log.judge_transport(nccl_log.parse_nccl_log("no nccl here"), "nvlink") == (
        False,
        ["the log has no NCCL channel lines (run with NCCL_DEBUG=INFO, every rank's output)"],
    )
