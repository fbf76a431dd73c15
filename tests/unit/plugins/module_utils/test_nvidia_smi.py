"""nvidia_smi parsers on real 2 x H200 output and an 8 x H100 layout of the same shape.

Where each fixture comes from: fixtures/nvidia_smi/README.md.
"""

import os

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import nvidia_smi
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "nvidia_smi")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_query_gpu_real_h200():
    gpus = nvidia_smi.parse_query_gpu(fixture("h200x2_nvidia-smi-query-gpu.csv"))
    assert [g["name"] for g in gpus] == ["NVIDIA H200", "NVIDIA H200"]
    assert gpus[1]["pci_bus_id"] == "00000000:00:07.0" and gpus[0]["memory_total_mib"] == 143771
    assert gpus[0]["mig_mode"] == "Disabled" and gpus[0]["ecc_uncorrected_volatile"] == 0


def test_versions_topology_nvlink_fabric_real_h200():
    assert nvidia_smi.parse_versions(fixture("h200x2_nvidia-smi.txt")) == {
        "driver_version": "580.159.04",
        "cuda_version": "13.0",
    }
    topo = nvidia_smi.parse_topo_matrix(fixture("h200x2_nvidia-smi-topo-m.txt"))
    assert topo["links"] == {"GPU0-GPU1": "NV18"} and topo["link_type"] == "nvlink"
    assert topo["affinity"]["GPU1"]["cpu"] == "0-31"
    links = nvidia_smi.parse_nvlink_status(fixture("h200x2_nvidia-smi-nvlink-s.txt"))
    assert len(links[0]) == 18 and links[1][17] == 26.562
    fabric = nvidia_smi.parse_fabric_state(fixture("h200x2_nvidia-smi-q.txt"))
    assert [f["state"] for f in fabric] == ["Completed", "Completed"] and fabric[0]["status"] == "Success"
    gpus = nvidia_smi.parse_query_gpu(fixture("h200x2_nvidia-smi-query-gpu.csv"))
    assert nvidia_smi.judge_gpus(gpus, topo, [], fabric, [], None, 2) == []


def test_h100x8_topology_with_nics():
    topo = nvidia_smi.parse_topo_matrix(fixture("h100x8_topo_m.txt"))
    assert len(topo["links"]) == 28 and topo["link_type"] == "nvlink"
    assert topo["nics"] == {"NIC0": "mlx5_0", "NIC1": "mlx5_1"}
    assert topo["affinity"]["GPU5"]["nics"] == {"mlx5_0": "SYS", "mlx5_1": "PXB"}
    assert topo["affinity"]["GPU5"]["numa"] == "1"


def test_degraded_nvlink_and_errors_are_problems():
    text = fixture("h100x8_topo_m.txt")
    lines = text.splitlines()
    # the matrix is symmetric: GPU0-GPU2 lost its NVLink (row/column 3), GPU0-GPU3 has fewer links
    for row, col, value in ((1, 3, "SYS"), (3, 1, "SYS"), (1, 4, "NV12"), (4, 1, "NV12")):
        cells = lines[row].split("\t")
        cells[col] = value
        lines[row] = "\t".join(cells)
    topo = nvidia_smi.parse_topo_matrix("\n".join(lines))
    gpus = nvidia_smi.parse_query_gpu(fixture("h100x8_query_gpu.csv").replace(", 0, 0\n", ", 3, 3\n", 1))
    xids = nvidia_smi.parse_xid_log(
        "[ 12.3] NVRM: Xid (PCI:0000:18:00): 79, pid=123, GPU has fallen off the bus.\n"
        "[ 13.0] NVRM: Xid (PCI:0000:2a:00): 13, pid=9, Graphics Exception\n"
    )
    problems = nvidia_smi.judge_gpus(
        gpus, topo, xids, [{"state": "In Progress", "status": "N/A"}], ["0000:05:00.0"], False, 8
    )
    text = "\n".join(problems)
    assert "GPU 0 (00000000:18:00.0) has 3 uncorrected ECC errors" in text
    assert "XID 79" in text and "XID 13" not in text
    assert "NVLink missing between GPU0-GPU2" in text and "GPU0-GPU3 (NV12)" in text
    assert "fabric state is In Progress" in text and "nvidia-fabricmanager is not active" in text


def test_unparsable_outputs_raise():
    with pytest.raises(LlmopsError, match="fields"):
        nvidia_smi.parse_query_gpu('Field "bogus" is not a valid field to query.\n')
    with pytest.raises(LlmopsError, match="no GPU"):
        nvidia_smi.parse_query_gpu("\n")
    with pytest.raises(LlmopsError, match="topo"):
        nvidia_smi.parse_topo_matrix("NVIDIA-SMI has failed\n")
