"""hccl parsers and judge on recorded output (fixtures/ascend/README.md says where each came from).

No Ascend NPU exists here, so nothing could be recorded on this machine: the all_reduce_test table is a
transcription of the run Huawei publishes in the hccl repository's docs (8 NPUs, 8 KiB..64 MiB), the
failed-check variant follows the printf formats of hccl_test's source, and the net_health strings are the ones
hccn_tool's own status table prints.
"""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import hccl
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

GIB = 1 << 30


def test_net_health_every_status_hccn_tool_prints():
    assert hccl.parse_net_health("net health status: Success\n") == "Success"
    assert hccl.parse_net_health("net health status: Receive timeout\n") == "Receive timeout"
    assert hccl.parse_net_health("net health status: Detect ip set\n") == "Detect ip set"
    assert hccl.parse_net_health("net health status: 3\n") == "Unreachable"  # numeric form of the same table
    assert hccl.parse_net_health("net health status: 42\n") == "Unknown"
    for status in hccl.NET_HEALTH_STATUSES:
        assert hccl.parse_net_health("net health status: %s" % status) == status
        assert status == "Success" or status in hccl.NET_HEALTH_FIXES
    for text in ("", "dev_id:0, link status: UP", "dsmi get net health status failed, ret:-8005"):
        with pytest.raises(LlmopsError, match="Cannot read hccn_tool -net_health -g output"):
            hccl.parse_net_health(text)


def test_all_reduce_test_published_run(fixture_text):
    parsed = hccl.parse_all_reduce_test(fixture_text("ascend", "hccl_test_all_reduce_8p.txt"))
    rows = parsed["rows"]
    assert len(rows) == 14 and parsed["failed_ranks"] == {}
    assert parsed["settings"] == "the minbytes is 8192, maxbytes is 67108864, iters is 20, warmup_iters is 5"
    assert rows[0] == {"size_bytes": 8192, "time_us": 764.55, "algbw_gbps": 0.00998, "check_result": "success"}
    assert rows[-1] == {"size_bytes": 67108864, "time_us": 2630.20, "algbw_gbps": 23.76245, "check_result": "success"}
    busbw = hccl.with_busbw(parsed, 8)
    # busbw = algbw x 2(n-1)/n = algbw x 1.75 on 8 NPUs
    assert busbw[-1]["busbw_gbps"] == pytest.approx(23.76245 * 1.75, abs=1e-4)


def test_all_reduce_test_failed_checks_name_the_rank(fixture_text):
    parsed = hccl.parse_all_reduce_test(fixture_text("ascend", "hccl_test_all_reduce_8p_rank3_failed.txt"))
    assert parsed["failed_ranks"] == {16777216: [3], 33554432: [3]}
    passed, reasons, _peak = hccl.judge([], parsed, 8, None, 0.1, GIB)
    assert not passed and len(reasons) == 2
    assert reasons[0].startswith("8 NPUs: the all-reduce result check failed at 16777216 bytes on rank 3")
    # newer CANN: rank 0's row says success, the failing rank prints its own line with the size
    newer = (
        "data_size(Bytes): | aveg_time(us): | alg_bandwidth(GB/s): | check_result:\n"
        "local rank_id 5, check result failed, 8388608           | 1767.65        | 4.41971              | failed\n"
        "8388608           | 1767.65        | 4.41971              | success\n"
    )
    parsed = hccl.parse_all_reduce_test(newer)
    assert len(parsed["rows"]) == 1 and parsed["failed_ranks"] == {8388608: [5]}
    assert hccl.judge([], parsed, 8, None, 0.1)[1] == ["8 NPUs: rank 5 reported a failed result check at 8388608 bytes"]


def test_check_disabled_rows_are_null_not_failures():
    text = (
        "Warning: The calculation result overflows, No verification is performed.\n"
        "data_size(Bytes): | aveg_time(us): | alg_bandwidth(GB/s): | check_result:\n"
        "1073741824        | 10442.38       | 102.82543            | NULL\n"
    )
    parsed = hccl.parse_all_reduce_test(text)
    passed, reasons, peak = hccl.judge([], parsed, 8, 170.0, 0.1, GIB)
    assert passed and reasons == [] and peak == pytest.approx(102.82543 * 1.75, abs=1e-3)


def test_failed_run_and_garbage_raise_with_the_tool_words(fixture_text):
    with pytest.raises(LlmopsError, match="topo exchange agent get socket timeout"):
        hccl.parse_all_reduce_test(fixture_text("ascend", "hccl_test_socket_timeout.txt"))
    with pytest.raises(LlmopsError, match=r"No result rows .*\(nothing\)"):
        hccl.parse_all_reduce_test("")
    with pytest.raises(LlmopsError, match="Unknown check_result 'maybe'"):
        hccl.parse_all_reduce_test(
            "data_size(Bytes): | aveg_time(us): | alg_bandwidth(GB/s): | check_result:\n8 | 1.0 | 2.0 | maybe\n"
        )
    # rows before a header are not rows (an mpirun banner with pipes must not be read as a size)
    with pytest.raises(LlmopsError, match="No result rows"):
        hccl.parse_all_reduce_test("8 | 1.0 | 2.0 | success\n")
    with pytest.raises(LlmopsError, match="positive integer"):
        hccl.bus_factor(0)


def test_judge_bandwidth_against_the_table(fixture_text):
    parsed = hccl.parse_all_reduce_test(fixture_text("ascend", "hccl_test_all_reduce_8p.txt"))
    expected, entry = hccl.lookup_expected("910B3", 8, [])
    assert expected == 100.0 and "starting value" in entry["source"]
    passed, reasons, peak = hccl.judge([], parsed, 8, expected, 0.1, GIB)
    # 64 MiB is the largest size of the published run: 23.76 x 1.75 = 41.6 GB/s, well below 90
    assert not passed and peak == pytest.approx(41.58, abs=0.01)
    assert "peak busbw 41.6 GB/s is below 90.0 GB/s" in reasons[0] and "below judge_min_bytes" in reasons[0]
    assert hccl.judge([], parsed, 8, 40.0, 0.1, 32 << 20)[:2] == (True, [])
    site = [{"model": "910B3", "gpus": 8, "link": "hccs", "busbw_gbps": 40.0, "source": "site"}]
    assert hccl.lookup_expected("910B3", 8, site) == (40.0, site[0])
    assert hccl.lookup_expected("910B3", 4, []) == (None, None)
    assert hccl.lookup_expected("NVIDIA H200", 8, []) == (None, None)  # the NVIDIA table never answers for NPUs


def test_planted_fault_names_both_devices_with_the_fix():
    health = [{"device": n, "net_health": "Success", "link": "UP"} for n in range(8)]
    health[2]["net_health"] = "Receive timeout"
    health[5]["link"] = "DOWN"
    passed, reasons, peak = hccl.judge(health)
    assert not passed and peak is None and len(reasons) == 2
    assert (
        reasons[0].startswith("NPU 2 net_health is Receive timeout:") and "hccn_tool -i 2 -netdetect -g" in reasons[0]
    )
    assert reasons[1].startswith("NPU 5 link is DOWN:") and "switch port" in reasons[1]
    health = [{"device": 0, "net_health": "Detect ip set", "link": "UP"}]
    assert "hccn_tool -i 0 -netdetect -s address" in hccl.judge(health)[1][0]
    assert hccl.judge(health, require_detect_ip=False) == (True, [], None)


def test_command_and_binary(tmp_path):
    assert hccl.all_reduce_test_binary(str(tmp_path)) is None
    binary = tmp_path / "bin" / "all_reduce_test"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    assert hccl.all_reduce_test_binary(str(tmp_path)) is None  # not executable
    binary.chmod(0o755)
    assert hccl.all_reduce_test_binary(str(tmp_path)) == str(binary)
    assert hccl.all_reduce_test_binary(str(binary.parent)) == str(binary)
    command = hccl.all_reduce_test_command("mpirun", ["--allow-run-as-root"], "b", 8, 8192, GIB, 2, 20, 5)
    assert " ".join(command) == (
        "mpirun --allow-run-as-root -n 8 b -b 8192 -e 1073741824 -f 2 -d fp32 -o sum -p 8 -n 20 -w 5"
    )


def test_report_lines():
    health = [{"device": 0, "net_health": "Success", "link": "UP"}]
    rows = [{"size_bytes": 8192, "time_us": 1.0, "algbw_gbps": 2.0, "busbw_gbps": 3.5, "check_result": "success"}]
    lines = hccl.report_lines(health, rows)
    assert lines[1].split() == ["0", "Success", "UP"] and lines[-1].split() == [
        "8192",
        "1.00",
        "2.00",
        "3.50",
        "success",
    ]
