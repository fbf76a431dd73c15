"""hccl_check against fake npu-smi, hccn_tool, mpirun and all_reduce_test that print recorded output.

There is no Ascend NPU here, so nothing was recorded on this machine: npu-smi prints fixtures/ascend's 8 x 910B3
table, hccn_tool is fixtures/ascend/fake_hccn_tool.sh (per-device state files, the strings hccn_tool prints),
all_reduce_test prints the run Huawei publishes (fixtures/ascend/README.md), started by a fake mpirun that checks
and records its arguments. The module's parsing, judging and command building run for real.
"""

import os
import shutil

import pytest

from ansible_collections.llmops.inference.plugins.modules import hccl_check

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "ascend")


@pytest.fixture
def node(tmp_path, monkeypatch, fake_tool):
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("HCCN_STATE", str(state))
    hccn = tmp_path / "hccn_tool"
    shutil.copy(os.path.join(FIXTURES, "fake_hccn_tool.sh"), str(hccn))
    smi = fake_tool("npu-smi", "cat %s" % os.path.join(FIXTURES, "npu_smi_info_910b3x8.txt"))
    bindir = tmp_path / "hccl_test" / "bin"
    bindir.mkdir(parents=True)
    binary = bindir / "all_reduce_test"
    binary.write_text('#!/bin/bash\necho "$@" > "$HCCN_STATE/all_reduce_test.args"\ncat "$HCCL_FIXTURE"\n')
    binary.chmod(0o755)
    # mpirun: extra args, then -n N, then the binary and its arguments (MPICH's and Open MPI's shape)
    mpirun = fake_tool(
        "mpirun",
        'echo "$@" > "$HCCN_STATE/mpirun.args"\nwhile [ "$1" != "-n" ]; do shift; done; shift 2; exec "$@"',
    )
    monkeypatch.setenv("HCCL_FIXTURE", os.path.join(FIXTURES, "hccl_test_all_reduce_8p.txt"))
    args = {
        "npu_smi_path": smi,
        "hccn_tool_path": str(hccn),
        "hccl_test_path": str(bindir),
        "mpirun_path": mpirun,
        "health_wait": 0,
    }
    return args, state


def test_health_and_all_reduce_pass_with_a_site_expectation(run, node):
    args, state = node
    result = run(hccl_check.main, dict(args, mpirun_args=["--allow-run-as-root"], expected_busbw_gbps=40.0))
    assert result["passed"] and not result.get("failed") and result["reasons"] == []
    assert result["tool"] == "hccl_test" and result["bandwidth_skipped"] is None
    assert [h["net_health"] for h in result["health"]] == ["Success"] * 8 and result["npu_count"] == 8
    assert result["peak_busbw_gbps"] == 41.58 and result["expected_source"] == "expected_busbw_gbps argument"
    assert len(result["results"]) == 14 and result["results"][-1]["busbw_gbps"] == pytest.approx(41.5843, abs=1e-3)
    assert (state / "mpirun.args").read_text().split()[:4] == [
        "--allow-run-as-root",
        "-n",
        "8",
        args["hccl_test_path"] + "/all_reduce_test",
    ]
    assert (state / "all_reduce_test.args").read_text().split() == (
        ["-b", "8192", "-e", "1073741824", "-f", "2", "-d", "fp32", "-o", "sum", "-p", "8", "-n", "20", "-w", "5"]
    )
    assert result["msg"] == "peak busbw 41.6 GB/s (hccl_test, 8 NPUs)" and result["table"][0].split() == [
        "NPU",
        "net_health",
        "link",
    ]


def test_default_table_flags_the_published_run_as_slow(run, node):
    args, _state = node
    result = run(hccl_check.main, args)
    assert result["failed"] and result["expected_busbw_gbps"] == 100.0 and "starting value" in result["expected_source"]
    assert "8 NPUs: peak busbw 41.6 GB/s is below 90.0 GB/s" in result["msg"]


def test_planted_fault_receive_timeout_and_link_down(run, node):
    """One NPU's probe times out, another's link is down: the check fails naming both device ids."""
    args, state = node
    (state / "dev3.net_health").write_text("Receive timeout\n")
    (state / "dev6.link").write_text("DOWN\n")
    result = run(hccl_check.main, dict(args, bandwidth_test="never"))
    assert result["failed"] and result["passed"] is False and len(result["reasons"]) == 2
    assert "NPU 3 net_health is Receive timeout" in result["msg"] and "hccn_tool -i 3 -netdetect -g" in result["msg"]
    assert "NPU 6 link is DOWN" in result["msg"] and "switch port" in result["msg"]
    assert result["bandwidth_skipped"] == "bandwidth_test=never" and result["tool"] is None


def test_no_hccl_test_reports_health_only_and_says_why(run, node, tmp_path):
    args, _state = node
    result = run(hccl_check.main, dict(args, hccl_test_path=str(tmp_path / "nowhere")))
    assert result["passed"] and not result.get("failed") and result["peak_busbw_gbps"] is None
    assert "all_reduce_test not found under hccl_test_path=" in result["bandwidth_skipped"]
    assert "all-reduce not run (all_reduce_test not found" in result["msg"]
    required = run(hccl_check.main, dict(args, hccl_test_path=str(tmp_path / "nowhere"), bandwidth_test="required"))
    assert required["failed"] and "bandwidth_test=required but all_reduce_test not found" in required["msg"]
    no_mpi = run(hccl_check.main, dict(args, mpirun_path=str(tmp_path / "no-mpirun")))
    assert no_mpi["passed"] and "mpirun not found" in no_mpi["bandwidth_skipped"]


def test_check_mode_runs_only_the_read_only_health_reads(run, node):
    args, state = node
    result = run(hccl_check.main, dict(args, expected_busbw_gbps=40.0), check_mode=True)
    assert result["passed"] and result["bandwidth_skipped"].startswith("check mode")
    assert not (state / "mpirun.args").exists()
    calls = (state / "calls.log").read_text().splitlines()
    assert len(calls) == 16 and all(c.endswith("-net_health -g") or c.endswith("-link -g") for c in calls)


def test_failed_result_check_names_the_rank(run, node, monkeypatch):
    args, _state = node
    monkeypatch.setenv("HCCL_FIXTURE", os.path.join(FIXTURES, "hccl_test_all_reduce_8p_rank3_failed.txt"))
    result = run(hccl_check.main, dict(args, expected_busbw_gbps=40.0))
    assert result["failed"] and "result check failed at 16777216 bytes on rank 3" in result["msg"]


def test_judge_a_users_output_without_running_anything(run, node, empty_path, tmp_path):
    args, state = node
    path = os.path.join(FIXTURES, "hccl_test_all_reduce_8p.txt")
    ok = run(hccl_check.main, {"hccl_output": path, "npus": 8, "expected_busbw_gbps": 40.0})
    assert ok["passed"] and ok["peak_busbw_gbps"] == 41.58 and ok["health"] == [] and ok["tool"] == "hccl_test"
    with open(path) as handle:
        text = handle.read()
    slow = run(hccl_check.main, {"hccl_log": text, "npus": 8, "npu_model": "910B3"})
    assert slow["failed"] and slow["expected_busbw_gbps"] == 100.0 and "below 90.0 GB/s" in slow["msg"]
    assert not (state / "calls.log").exists()  # nothing ran
    assert "needs npus" in run(hccl_check.main, {"hccl_output": path})["msg"]
    unjudged = run(hccl_check.main, {"hccl_output": path, "npus": 4, "npu_model": "910B3"})  # no table entry for 4
    assert unjudged["passed"] and unjudged["expected_busbw_gbps"] is None and unjudged["peak_busbw_gbps"] == 35.64
    missing = run(hccl_check.main, {"hccl_output": str(tmp_path / "none.log"), "npus": 8})
    assert "neither all_reduce_test output nor a readable file" in missing["msg"]
    crash = run(hccl_check.main, {"hccl_output": os.path.join(FIXTURES, "hccl_test_socket_timeout.txt"), "npus": 8})
    assert crash["failed"] and "topo exchange agent get socket timeout" in crash["msg"]


def test_tool_errors_and_bad_arguments(run, node, fake_tool, empty_path, monkeypatch):
    args, _state = node
    assert (
        "npu-smi-missing not found (npu_smi_path)"
        in run(hccl_check.main, dict(args, npu_smi_path="npu-smi-missing"))["msg"]
    )
    assert "hccn_tool not found" in run(hccl_check.main, dict(args, hccn_tool_path="/nonexistent/hccn_tool"))["msg"]
    monkeypatch.setenv("HCCN_FAIL", "-i 4 -net_health -g")
    assert "-i 4 -net_health -g exited with 255: hccn_tool: dev not found" in run(hccl_check.main, args)["msg"]
    monkeypatch.delenv("HCCN_FAIL")
    crash = fake_tool("mpirun-crash", 'echo "HcclGetRootInfo failed"; exit 1')
    assert "exited with 1: HcclGetRootInfo failed" in run(hccl_check.main, dict(args, mpirun_path=crash))["msg"]
    assert "npus=9 but npu-smi lists 8 NPUs" in run(hccl_check.main, dict(args, npus=9))["msg"]
    assert "min_bytes (2147483648) is larger" in run(hccl_check.main, dict(args, min_bytes="2G"))["msg"]
    assert "step_factor must be at least 2" in run(hccl_check.main, dict(args, step_factor=1))["msg"]
    assert "tolerance must be a fraction" in run(hccl_check.main, dict(args, tolerance=1.5))["msg"]
    assert "Cannot read 'lots'" in run(hccl_check.main, dict(args, max_bytes="lots"))["msg"]
    bad_table = run(hccl_check.main, dict(args, expected_table=[{"model": "910B"}]))
    assert bad_table["failed"] and "expected_table entries need" in bad_table["msg"]
