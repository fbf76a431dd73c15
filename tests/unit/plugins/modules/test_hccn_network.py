"""hccn_network against fake hccn_tool (fixtures/ascend/fake_hccn_tool.sh: real output shapes, state files)."""

import os
import shutil

import pytest

from ansible_collections.llmops.inference.plugins.modules import hccn_network, npu_facts

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "ascend")
PLAN = {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.20"}}
DEFAULTS = {"netmask": "255.255.255.0", "gateway": "10.197.90.254", "netdetect": "10.197.90.254", "tls": 0}


@pytest.fixture
def hccn(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    tool = tmp_path / "hccn_tool"
    shutil.copy(os.path.join(FIXTURES, "fake_hccn_tool.sh"), str(tool))
    monkeypatch.setenv("HCCN_STATE", str(state))
    conf = tmp_path / "hccn.conf"
    args = {
        "host": "node01",
        "plan": PLAN,
        "defaults": DEFAULTS,
        "device_count": 8,
        "hccn_tool_path": str(tool),
        "hccn_conf_path": str(conf),
    }
    return args, state, conf


def calls(state):
    path = state / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return [line for line in lines if " -s " in line]


def test_sets_only_differences_then_idempotent(run, hccn):
    args, state, conf = hccn
    # device 3 already right except TLS: only its TLS is set
    for name, value in (
        ("address", "10.197.90.13"),
        ("netmask", "255.255.255.0"),
        ("gateway", "10.197.90.254"),
        ("netdetect", "10.197.90.254"),
    ):
        (state / ("dev3.%s" % name)).write_text(value + "\n")
    first = run(hccn_network.main, args)
    assert first["changed"] and not first.get("failed")
    sets = calls(state)
    assert len(sets) == 7 * 4 + 1
    assert "-i 0 -ip -s address 10.197.90.10 netmask 255.255.255.0" in sets
    assert [c for c in sets if c.startswith("-i 3 ")] == ["-i 3 -tls -s enable 0"]
    assert "address_7=10.197.90.17" in conf.read_text() and first["links"]["0"] == "UP"
    second = run(hccn_network.main, args)
    assert second["changed"] is False and second["commands"] == [] and calls(state) == []


def test_check_mode_reports_and_sets_nothing(run, hccn):
    args, state, conf = hccn
    result = run(hccn_network.main, args, check_mode=True, diff=True)
    assert result["changed"] and len(result["commands"]) == 32 and result["conf_changed"]
    assert "address_0=10.197.90.10" in result["diff"]["after"]
    assert calls(state) == [] and not conf.exists()


def test_conf_drift_alone_is_a_change(run, hccn):
    args, state, conf = hccn
    run(hccn_network.main, args)
    calls(state)
    conf.write_text(conf.read_text().replace("tls_5=0", "tls_5=1"))
    result = run(hccn_network.main, args)
    assert result["changed"] and result["commands"] == [] and "tls_5=0" in conf.read_text()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"plan": {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.15"}}}, "used twice"),
        ({"host": "node09"}, "host node09 is not in the plan"),
        ({"hccn_tool_path": "/nonexistent/hccn_tool"}, "hccn_tool not found"),
        ({"plan": {"node01": {"base": "10.197.90.1.10"}}}, "not an IPv4 address"),
    ],
)
def test_bad_arguments_fail_before_anything_is_set(run, hccn, change, message):
    args, state, _conf = hccn
    result = run(hccn_network.main, dict(args, **change))
    assert result["failed"] and message in result["msg"] and calls(state) == []


def test_nonzero_exit_unparsable_and_link_down(run, hccn, monkeypatch):
    args, state, _conf = hccn
    monkeypatch.setenv("HCCN_FAIL", "-i 2 -ip -g")
    result = run(hccn_network.main, args)
    assert result["failed"] and "-i 2 -ip -g exited with 255: hccn_tool: dev not found" in result["msg"]
    monkeypatch.delenv("HCCN_FAIL")
    (state / "dev4.link").write_text("DOWN\n")
    (state / "dev1.ping").write_text("lost\n")
    result = run(hccn_network.main, dict(args, ping_addresses=["10.197.90.21"]))
    assert result["failed"] and "device 4 link is DOWN" in result["msg"]
    assert "device 1 cannot reach 10.197.90.21" in result["msg"]


def test_npu_facts_with_network(run, hccn, fake_tool, fixture_text, tmp_path):
    args, state, _conf = hccn
    smi = fake_tool("npu-smi", "cat %s" % os.path.join(FIXTURES, "npu_smi_info_910b3x8.txt"))
    run(hccn_network.main, args)
    result = run(
        npu_facts.main, {"npu_smi_path": smi, "hccn_tool_path": args["hccn_tool_path"], "expected_npu_count": 8}
    )
    assert result["npu_count"] == 8 and result["npu_model"] == "910B3" and result["problems"] == []
    assert result["npus"][6]["address"] == "10.197.90.16" and result["npus"][6]["tls"] == 0
    (state / "dev2.link").write_text("DOWN\n")
    failed = run(npu_facts.main, {"npu_smi_path": smi, "hccn_tool_path": args["hccn_tool_path"]})
    assert failed["failed"] and "NPU 2 network link is DOWN" in failed["msg"]


def test_npu_facts_tool_errors(run, fake_tool, empty_path):
    assert "npu-smi not found" in run(npu_facts.main, {})["msg"]
    broken = fake_tool("npu-smi", "echo 'dcmi module initialize failed. ret is -8005'; exit 1")
    assert "npu-smi info exited with 1" in run(npu_facts.main, {"npu_smi_path": broken})["msg"]
    garbage = fake_tool("npu-smi-garbage", "echo hello")
    assert "Cannot read any NPU" in run(npu_facts.main, {"npu_smi_path": garbage})["msg"]
    assert "expected_npu_count" in run(npu_facts.main, {"expected_npu_count": 0})["msg"]
