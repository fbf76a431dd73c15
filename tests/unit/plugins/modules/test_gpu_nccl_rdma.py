"""gpu_facts, nccl_check and rdma_check driven in-process.

nvidia-smi and all_reduce_perf are fake scripts printing the real recordings of the 2 x H200 device run
(fixtures/nvidia_smi, fixtures/nccl_tests); the torch fallback is exercised through a fake interpreter that
keeps the script nccl_check hands it and prints the real torch-sweep recording; RDMA uses fake sysfs trees.
"""

import json
import os

import pytest

from ansible_collections.llmops.inference.plugins.modules import (
    gpu_facts,
    nccl_check,
    rdma_check,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")


def fx(*parts):
    return os.path.abspath(os.path.join(FIXTURES, *parts))


NVIDIA_SMI = """case "$*" in
  --query-gpu*) cat %s ;;
  "topo -m") cat %s ;;
  "nvlink -s") cat %s ;;
  "-q") cat %s ;;
  "") cat %s ;;
  *) echo "unexpected $*" >&2; exit 2 ;;
esac""" % (
    fx("nvidia_smi", "h200x2_nvidia-smi-query-gpu.csv"),
    fx("nvidia_smi", "h200x2_nvidia-smi-topo-m.txt"),
    fx("nvidia_smi", "h200x2_nvidia-smi-nvlink-s.txt"),
    fx("nvidia_smi", "h200x2_nvidia-smi-q.txt"),
    fx("nvidia_smi", "h200x2_nvidia-smi.txt"),
)


@pytest.fixture
def smi(fake_tool, empty_path):
    return fake_tool("nvidia-smi", NVIDIA_SMI)


def test_gpu_facts_real_h200(run, smi, fake_tool):
    fake_tool("dmesg", "echo '[ 5.1] NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  580.159.04'")
    result = run(gpu_facts.main, {"expected_gpu_count": 2})
    assert not result.get("failed") and result["gpu_count"] == 2 and result["gpu_model"] == "NVIDIA H200"
    assert (result["driver_version"], result["cuda_version"], result["link_type"]) == ("580.159.04", "13.0", "nvlink")
    assert result["fabric"][0]["state"] == "Completed" and result["problems"] == []


def test_gpu_facts_failures(run, smi, fake_tool, empty_path):
    fake_tool("dmesg", "echo '[ 9.9] NVRM: Xid (PCI:0000:00:06): 79, pid=1, GPU has fallen off the bus.'")
    failed = run(gpu_facts.main, {"expected_gpu_count": 8})
    assert failed["failed"] and "2 GPUs found, 8 expected" in failed["msg"] and "XID 79" in failed["msg"]
    assert run(gpu_facts.main, {"expected_gpu_count": 8, "fail_on_problems": False})["problems"]
    assert "nvidia-smi not found" in run(gpu_facts.main, {"nvidia_smi_path": "nvidia-smi-missing"})["msg"]
    broken = fake_tool("smi-broken", "echo 'NVIDIA-SMI has failed because it could not communicate'; exit 9")
    assert "exited with 9" in run(gpu_facts.main, {"nvidia_smi_path": broken})["msg"]
    garbage = fake_tool("smi-garbage", "echo 'a, b'")
    assert "printed 2 fields" in run(gpu_facts.main, {"nvidia_smi_path": garbage})["msg"]
    assert "at least 1" in run(gpu_facts.main, {"expected_gpu_count": 0})["msg"]


def test_nccl_check_nccl_tests_pass_and_env(run, smi, fake_tool, tmp_path):
    envfile = tmp_path / "env.txt"
    perf = fake_tool(
        "all_reduce_perf",
        'env > %s; echo "$*" >> %s; cat %s'
        % (envfile, envfile, fx("nccl_tests", "h200x2_all_reduce_perf_nccl_debug_info.txt")),
    )
    result = run(nccl_check.main, {"all_reduce_perf_path": perf, "nccl_env": {"NCCL_IB_DISABLE": "1"}})
    assert result["passed"] and result["tool"] == "nccl-tests" and result["peak_busbw_gbps"] == 344.3
    assert result["expected_busbw_gbps"] == 340.0 and len(result["results"]) == 30
    seen = envfile.read_text()
    assert "NCCL_IB_DISABLE=1" in seen and "NCCL_NVLS_ENABLE=0" in seen and "NCCL_DEBUG=INFO" in seen
    assert "-b 8 -e 4294967296 -f 2 -g 2 -n 20 -w 5" in seen


def test_nccl_check_fails_with_reasons(run, smi, fake_tool):
    slow = fake_tool("arp_p2p", "cat %s" % fx("nccl_tests", "h200x2_all_reduce_perf_p2p_disabled.txt"))
    result = run(nccl_check.main, {"all_reduce_perf_path": slow, "nccl_env": {"NCCL_P2P_DISABLE": "1"}})
    assert result["failed"] and result["passed"] is False and "shortfall" in result["reasons"][0]
    socket = fake_tool("arp_sock", "cat %s" % fx("nccl_tests", "h200x2_all_reduce_perf_p2p_shm_disabled_socket.txt"))
    result = run(nccl_check.main, {"all_reduce_perf_path": socket, "judge_min_bytes": "64M"})
    assert result["failed"] and any("NET/Socket" in r for r in result["reasons"])
    custom = run(nccl_check.main, {"all_reduce_perf_path": slow, "expected_busbw_gbps": 25.0})
    assert custom["passed"] is False and any("via SHM" in r for r in custom["reasons"])
    table = run(
        nccl_check.main,
        {
            "all_reduce_perf_path": slow,
            "link_type": "pcie",
            "expected_table": [{"model": "H200", "gpus": 2, "link": "pcie", "busbw_gbps": 25}],
        },
    )
    assert table["passed"] and table["expected_source"] == "expected_table"


def test_nccl_check_torch_fallback_gets_the_script(run, smi, fake_tool, tmp_path):
    kept = tmp_path / "kept.py"
    python = fake_tool(
        "python-torch",
        """if [ "$1" = -c ]; then echo True; exit 0; fi
cp "$1" %s; shift; echo "$*" >> %s.args; cat %s"""
        % (kept, kept, fx("nccl_tests", "h200x2_torch_sweep.txt")),
    )
    result = run(nccl_check.main, {"torch_python": python, "max_bytes": "1G"})
    assert result["tool"] == "torch" and result["passed"] and result["peak_busbw_gbps"] == 325.97
    source = kept.read_text()
    assert "def _worker(local, world, port, args)" in source and 'start_method="spawn"' in source
    compile(source, "nccl_torch_sweep.py", "exec")
    assert "--gpus 2 --min-bytes 8 --max-bytes 1073741824" in (tmp_path / "kept.py.args").read_text()


def test_nccl_check_errors(run, smi, fake_tool, empty_path):
    missing = run(nccl_check.main, {"torch_python": "no-python-here"})
    assert missing["failed"] and "Neither all_reduce_perf" in missing["msg"]
    assert "all_reduce_perf not found" in run(nccl_check.main, {"tool": "nccl-tests"})["msg"]
    crash = fake_tool("arp_crash", "echo 'Test NCCL failure common.cu:1010 unhandled cuda error'; exit 3")
    assert "exited with 3" in run(nccl_check.main, {"all_reduce_perf_path": crash})["msg"]
    garbage = fake_tool("arp_garbage", "echo hello")
    assert "No result rows" in run(nccl_check.main, {"all_reduce_perf_path": garbage})["msg"]
    perf = fake_tool("arp_ok", "cat %s" % fx("nccl_tests", "h200x2_all_reduce_perf_nccl_debug_info.txt"))
    assert (
        "larger than max_bytes"
        in run(nccl_check.main, {"all_reduce_perf_path": perf, "min_bytes": "2G", "max_bytes": "1G"})["msg"]
    )
    assert "Cannot read 'lots'" in run(nccl_check.main, {"all_reduce_perf_path": perf, "max_bytes": "lots"})["msg"]
    assert "the host has 2 GPUs" in run(nccl_check.main, {"all_reduce_perf_path": perf, "gpus": 4})["msg"]
    assert "step_factor must be at least 2" in run(nccl_check.main, {"step_factor": 1})["msg"]
    assert "gpus >= 2" in run(nccl_check.main, {"gpus": 1})["msg"]


def test_rdma_check_layouts(run, sysfs, empty_path, tmp_path):
    route = tmp_path / "proc" / "proc" / "net"
    route.mkdir(parents=True)
    (route / "route").write_text("Iface\tDestination\tGateway\nbond0\t00000000\t0100000A\n")
    ok = run(
        rdma_check.main,
        {
            "sysfs_root": sysfs("roce_v2_mixed_gid_table.json"),
            "proc_root": str(tmp_path / "proc"),
            "min_rate_gbps": 100,
            "nccl_env_overrides": {"NCCL_SOCKET_IFNAME": "eth0"},
        },
    )
    assert not ok.get("failed") and ok["gid_index"] == 5 and ok["active_hcas"] == ["mlx5_0:1", "mlx5_1:1"]
    assert ok["nccl_env"]["NCCL_IB_GID_INDEX"] == "5" and ok["nccl_env"]["NCCL_SOCKET_IFNAME"] == "eth0"
    assert ok["nccl_env"]["GLOO_SOCKET_IFNAME"] == "bond0"
    cross = run(
        rdma_check.main,
        {
            "sysfs_root": sysfs("roce_v2_mixed_gid_table.json"),
            "host_name": "node1",
            "hosts_gid_indexes": {"node2": 3, "node3": 5},
        },
    )
    assert cross["failed"] and "index 3 on node2; index 5 on node1, node3" in cross["msg"]


def test_rdma_check_down_slow_and_required_tools(run, sysfs, fake_tool, empty_path, fixture_text):
    root = sysfs("cx6_ib_port_down_and_slow.json")
    down = run(rdma_check.main, {"sysfs_root": root, "min_rate_gbps": 200})
    assert down["failed"] and "mlx5_2 port 1 is down" in down["msg"] and "mlx5_3 port 1 runs at 100" in down["msg"]
    assert down["nccl_env"]["NCCL_IB_HCA"] == "=mlx5_0:1,mlx5_1:1,mlx5_3:1"
    only = run(rdma_check.main, {"sysfs_root": root, "expected_devices": ["mlx5_0", "mlx5_1"], "use_tools": "never"})
    assert not only.get("failed") and only["active_hcas"] == ["mlx5_0:1", "mlx5_1:1"]
    required = run(rdma_check.main, {"sysfs_root": root, "use_tools": "required", "fail_on_problems": False})
    assert required["failed"] and "ibv_devinfo not found" in required["msg"]
    fake_tool("ibv_devinfo", "echo 'Failed to get IB devices list: Function not implemented' >&2; exit 1")
    nonzero = run(rdma_check.main, {"sysfs_root": root, "use_tools": "required", "fail_on_problems": False})
    assert "ibv_devinfo exited with 1: Failed to get IB devices list" in nonzero["msg"]
    fake_tool("ibv_devinfo", "cat %s" % fx("rdma", "ibv_devinfo_roce.txt"))
    fake_tool("ibstat", "echo garbage")
    garbage = run(rdma_check.main, {"sysfs_root": root, "fail_on_problems": False})
    assert garbage["failed"] and "Cannot read ibstat output" in garbage["msg"]
    fake_tool("ibstat", "cat %s" % fx("rdma", "ibstat_cx6_ib.txt"))
    tools = run(rdma_check.main, {"sysfs_root": root, "fail_on_problems": False})
    assert tools["tools"]["ibstat"]["mlx5_1"]["ports"]["1"]["state"] == "Down"


def test_rdma_check_no_devices_and_bad_args(run, tmp_path, empty_path):
    clean = run(rdma_check.main, {"sysfs_root": str(tmp_path)})
    assert not clean.get("failed") and clean["rdma_present"] is False and "no RDMA devices" in clean["msg"]
    assert clean["nccl_env"]["NCCL_IB_DISABLE"] == "1"
    assert "require_rdma" in run(rdma_check.main, {"sysfs_root": str(tmp_path), "require_rdma": True})["msg"]
    assert "must be positive" in run(rdma_check.main, {"min_rate_gbps": -1})["msg"]
    assert "must be a GID index" in run(rdma_check.main, {"hosts_gid_indexes": {"a": "three"}})["msg"]
    assert json.dumps(clean)


def test_nccl_check_judges_a_users_log_without_running_anything(run, empty_path):
    """nccl_log: real single-host recordings and two-host logs in published format (fixtures/nccl_logs/README.md).
    empty_path: no nvidia-smi, no all_reduce_perf, no python with torch exists, so nothing can run."""
    ok = run(nccl_check.main, {"nccl_log": fx("nccl_logs", "nccl-nvlink.log"), "expected_transport": "nvlink"})
    assert not ok.get("failed") and ok["passed"] and ok["transports"]["summary"] == {"nvlink": 48}
    assert ok["changed"] is False and "as expected" in ok["msg"]
    socket = run(nccl_check.main, {"nccl_log": fx("nccl_logs", "nccl-socket.log"), "expected_transport": "nvlink"})
    assert socket["failed"] and "NET/Socket (TCP)" in socket["msg"] and socket["transports"]["summary"] == {"socket": 4}
    with open(fx("nccl_logs", "nccl-2node-ib-socket-fallback.log")) as handle:
        text = handle.read()
    facts = {"devices": [{"name": "mlx5_0", "ports": [{"port": 1, "state": "ACTIVE", "link_layer": "InfiniBand"}]}]}
    fallback = run(nccl_check.main, {"nccl_log": text, "rdma_facts": facts})
    assert fallback["failed"] and fallback["expected_transport"] == "ib"
    assert "inter-node channel connections run via NET/Socket (TCP), not NET/IB (InfiniBand)" in fallback["msg"]
    roce_facts = {
        "devices": [
            {
                "name": "mlx5_0",
                "ports": [{"port": 1, "state": "ACTIVE", "link_layer": "Ethernet", "roce_v2_ipv4_gid_index": 5}],
            }
        ]
    }
    roce = run(nccl_check.main, {"nccl_log": fx("nccl_logs", "nccl-2node-roce.log"), "rdma_facts": roce_facts})
    assert roce["failed"] and "GID index 3, the RDMA facts give 5" in roce["msg"]


def test_nccl_check_nccl_log_bad_input(run, empty_path):
    missing = run(nccl_check.main, {"nccl_log": "/nonexistent/nccl.log", "expected_transport": "ib"})
    assert missing["failed"] and "neither NCCL_DEBUG output nor a readable file" in missing["msg"]
    unjudged = run(nccl_check.main, {"nccl_log": fx("nccl_logs", "nccl-nvlink.log")})
    assert unjudged["failed"] and "needs expected_transport or rdma_facts" in unjudged["msg"]
    bad = run(nccl_check.main, {"nccl_log": "x", "expected_transport": "infiniband"})
    assert bad["failed"] and "expected_transport" in bad["msg"]


def test_nccl_check_sweep_judges_transport_too(run, smi, fake_tool):
    """A sweep whose channels went over SHM fails an nvlink transport expectation even with a low bandwidth bar."""
    slow = fake_tool("arp_p2p2", "cat %s" % fx("nccl_tests", "h200x2_all_reduce_perf_p2p_disabled.txt"))
    result = run(nccl_check.main, {"all_reduce_perf_path": slow, "expected_busbw_gbps": 1.0, "link_type": "pcie"})
    assert result["passed"] and result["transports"]["intra_node"] == ["shm"]
    strict = run(
        nccl_check.main,
        {"all_reduce_perf_path": slow, "expected_busbw_gbps": 1.0, "link_type": "pcie", "expected_transport": "nvlink"},
    )
    assert strict["failed"] and any("not P2P (NVLink)" in r for r in strict["reasons"])
