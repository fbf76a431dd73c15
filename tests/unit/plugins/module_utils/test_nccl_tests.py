"""nccl_tests parser and judge on real all_reduce_perf / torch sweep recordings (fixtures/nccl_tests/README.md)."""

import os

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import nccl_tests
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "nccl_tests")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_parse_real_h200_sweep_reads_every_size_row():
    """Real all_reduce_perf 2.19.6 output, 2 x H200, -b 8 -e 4G -f 2 (recorded by nccl_check_proof.sh)."""
    parsed = nccl_tests.parse_all_reduce_perf(fixture("h200x2_all_reduce_perf_nccl_debug_info.txt"))
    sizes = [r["size_bytes"] for r in parsed["rows"]]
    assert sizes == [8 << i for i in range(30)]
    last = parsed["rows"][-1]
    assert last["count"] == 1073741824 and last["type"] == "float" and last["redop"] == "sum" and last["root"] == -1
    assert last["out_of_place"] == {"time_us": 12484.1, "algbw_gbps": 344.04, "busbw_gbps": 344.04, "wrong": 0}
    assert last["in_place"]["busbw_gbps"] == 344.30
    assert parsed["avg_busbw_gbps"] == 105.365 and parsed["out_of_bounds"] == 0
    assert [d["name"] for d in parsed["devices"]] == ["NVIDIA H200", "NVIDIA H200"]
    assert nccl_tests.peak_busbw(parsed, 1 << 30) == 344.30


def test_torch_sweep_rows_read_by_the_same_parser():
    """Real output of plugins/module_utils/nccl_torch_sweep.py on 2 x H200 (one parser serves both tools)."""
    parsed = nccl_tests.parse_all_reduce_perf(fixture("h200x2_torch_sweep.txt"))
    assert parsed["rows"][-1]["size_bytes"] == 1 << 30
    assert parsed["rows"][-1]["in_place"]["busbw_gbps"] == 325.97
    assert all(r["out_of_place"]["wrong"] == 0 and r["in_place"]["wrong"] == 0 for r in parsed["rows"])
    assert nccl_tests.parse_nccl_debug(fixture("h200x2_torch_sweep.txt"))["transports"] == ["P2P/CUMEM"]


def test_nccl_debug_of_healthy_run():
    """Real NCCL_DEBUG=INFO lines (NCCL 2.28.9): single host, channels via P2P/direct pointer."""
    debug = nccl_tests.parse_nccl_debug(fixture("h200x2_all_reduce_perf_nccl_debug_info.txt"))
    summary = {k: debug[k] for k in ("nccl_version", "network", "transports", "socket_channels")}
    assert summary == {
        "nccl_version": "2.28.9",
        "network": "Socket",
        "transports": ["P2P/direct"],
        "socket_channels": [],
    }
    assert debug["transport"]["intra_node"] == ["nvlink"]


def test_judge_passes_real_run_against_table():
    text = fixture("h200x2_all_reduce_perf_nccl_debug_info.txt")
    expected, entry = nccl_tests.lookup_expected("NVIDIA H200", 2, "nvlink")
    assert expected == 340.0 and "measured" in entry["source"]
    passed, reasons, peak = nccl_tests.judge(
        nccl_tests.parse_all_reduce_perf(text), nccl_tests.parse_nccl_debug(text), expected, 0.1, link_type="nvlink"
    )
    assert passed and reasons == [] and peak == 344.30


def test_judge_fails_p2p_disabled_with_shortfall_and_transport():
    """Real run with NCCL_P2P_DISABLE=1: SHM channels, about 29 GB/s."""
    text = fixture("h200x2_all_reduce_perf_p2p_disabled.txt")
    passed, reasons, peak = nccl_tests.judge(
        nccl_tests.parse_all_reduce_perf(text), nccl_tests.parse_nccl_debug(text), 340.0, 0.1, link_type="nvlink"
    )
    assert not passed and peak < 40
    assert "below 306.0 GB/s" in reasons[0] and "shortfall" in reasons[0]
    assert "via SHM, not P2P" in reasons[1]


def test_judge_fails_socket_fallback():
    """Real run with NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1: channels via NET/Socket."""
    text = fixture("h200x2_all_reduce_perf_p2p_shm_disabled_socket.txt")
    debug = nccl_tests.parse_nccl_debug(text)
    assert debug["socket_channels"] == ["0->1", "1->0"] and "NET/Socket" in debug["transports"]
    passed, reasons, _peak = nccl_tests.judge(nccl_tests.parse_all_reduce_perf(text), debug, None, 0.1)
    assert not passed and any("NET/Socket" in r for r in reasons)


def test_judge_reports_wrong_values():
    text = fixture("h200x2_all_reduce_perf_nccl_debug_info.txt").replace(
        "  1073741824     268435456     float     sum      -1  3282.90  327.07  327.07       0",
        "  1073741824     268435456     float     sum      -1  3282.90  327.07  327.07      12",
    )
    passed, reasons, _expected = nccl_tests.judge(nccl_tests.parse_all_reduce_perf(text), None, None, 0.1)
    assert not passed and reasons == ["all GPUs: 12 wrong values at 1073741824 bytes (out-of-place)"]


def test_per_iteration_layout_and_na_wrong():
    header = "#  size count type redop root time algbw busbw #wrong i_min i_max i_p99 i_cv% time ...\n"
    row = (
        "  1073741824     268435456     float     sum      -1  3282.90  327.07  327.07    N/A  3200.0  3300.0"
        "  3299.0   1.20  3279.34  327.43  327.43    N/A  3200.0  3300.0  3299.0   1.10\n"
    )
    parsed = nccl_tests.parse_all_reduce_perf(header + row)
    assert parsed["rows"][0]["in_place"] == {
        "time_us": 3279.34,
        "algbw_gbps": 327.43,
        "busbw_gbps": 327.43,
        "wrong": None,
    }


def test_unparsable_output_names_the_tail():
    with pytest.raises(LlmopsError, match="No result rows.*Test NCCL failure"):
        nccl_tests.parse_all_reduce_perf("vm: Test NCCL failure common.cu:1010 'unhandled cuda error'\n")


def test_expected_table_override_and_misses():
    table = [{"model": "H20", "gpus": 8, "link": "nvlink", "busbw_gbps": 360, "source": "site"}]
    assert nccl_tests.lookup_expected("NVIDIA H20", 8, "nvlink", table)[0] == 360.0
    assert nccl_tests.lookup_expected("NVIDIA H20", 8, "mixed", table) == (None, None)
    with pytest.raises(LlmopsError, match="busbw_gbps"):
        nccl_tests.lookup_expected("x", 2, "pcie", [{"model": "x"}])


def test_sizes_and_tolerance_validation():
    assert nccl_tests.parse_size("4G") == 4 << 30 and nccl_tests.parse_size("8") == 8
    assert nccl_tests.parse_size("512MiB") == 512 << 20
    for bad in ("four", "0", "-1M"):
        with pytest.raises(LlmopsError):
            nccl_tests.parse_size(bad)
    with pytest.raises(LlmopsError, match="tolerance"):
        nccl_tests.judge(
            {
                "rows": [
                    {
                        "size_bytes": 8,
                        "out_of_place": {"busbw_gbps": 1, "wrong": 0},
                        "in_place": {"busbw_gbps": 1, "wrong": 0},
                    }
                ]
            },
            None,
            1,
            1.5,
        )


def test_sweep_env_keeps_nvls_off_and_applies_pod_env():
    env = nccl_tests.sweep_env({"PATH": "/bin"}, {"NCCL_IB_HCA": "=mlx5_0:1", "NCCL_IB_GID_INDEX": 3}, [2, 3])
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["NCCL_IB_GID_INDEX"] == "3" and env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert nccl_tests.sweep_env({}, {"NCCL_NVLS_ENABLE": "1"})["NCCL_NVLS_ENABLE"] == "1"
    assert nccl_tests.gpu_pairs(range(3)) == [[0, 1], [0, 2], [1, 2]]


@pytest.mark.parametrize(
    "name, transports",
    [("h200x2_torch_sweep_2nodes_nccl.txt", ["P2P/CUMEM"]), ("h200_host_torch_sweep_2nodes_gloo_cpu.txt", [])],
)
def test_multi_node_sweep_output_reads_like_single_node(name, transports):
    """Real output of the sweep run as two node ranks (the serving pre-flight's shape), NCCL and the gloo stand-in."""
    text = fixture(name)
    parsed = nccl_tests.parse_all_reduce_perf(text)
    assert [r["size_bytes"] for r in parsed["rows"]] == [(1 << 20) << i for i in range(9)]
    assert all(r["in_place"]["wrong"] == 0 and r["out_of_place"]["wrong"] == 0 for r in parsed["rows"])
    assert "nGpus 2" in text
    assert nccl_tests.parse_nccl_debug(text)["transports"] == transports


def test_sweep_arguments_are_checked_before_torch_is_imported():
    from ansible_collections.llmops.inference.plugins.module_utils import nccl_torch_sweep

    for argv in (
        ["--gpus", "1"],
        ["--gpus", "1", "--nodes", "2", "--node-rank", "2", "--master-port", "1"],
        ["--gpus", "1", "--nodes", "2", "--node-rank", "1"],
        ["--gpus", "2", "--backend", "nccl", "--device", "cpu"],
    ):
        with pytest.raises(SystemExit):
            nccl_torch_sweep.main(argv)


def test_split_sweeps_reads_each_op_and_an_all_reduce_perf_output_is_one():
    text = fixture("h200x2_torch_sweep_all_to_all.txt")
    sweeps = nccl_tests.split_sweeps(text)
    assert [op for op, _text in sweeps] == ["all_reduce", "all_to_all"]
    a2a = nccl_tests.parse_all_reduce_perf(sweeps[1][1])
    assert {row["redop"] for row in a2a["rows"]} == {"none"}
    assert all(
        row["in_place"] == {"time_us": None, "algbw_gbps": None, "busbw_gbps": None, "wrong": None}
        for row in a2a["rows"]
    )
    assert nccl_tests.peak_busbw(a2a, 1 << 30) > 300
    plain = fixture("h200x2_all_reduce_perf_p2p_disabled.txt")
    assert nccl_tests.split_sweeps(plain) == [("all_reduce", plain)]
