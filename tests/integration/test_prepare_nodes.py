"""playbooks/prepare_nodes.yml on two simulated Ascend hosts, through real ansible-playbook runs.

No Ascend NPU exists here: npu-smi prints a recorded `npu-smi info` of an 8 x 910B3 host and hccn_tool
is tests/unit/fixtures/ascend/fake_hccn_tool.sh, which prints the real output shapes from per-device
state files (fixtures/ascend/README.md says where each shape comes from). Each host gets its own state
folder, so the second run really reads what the first one set.
"""

import json
import os

import yaml

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "unit", "fixtures", "ascend")


def _host(tmp_path, name):
    home = tmp_path / name
    state = home / "state"
    state.mkdir(parents=True)
    hccn = home / "hccn_tool"
    hccn.write_text('#!/bin/sh\nHCCN_STATE=%s exec %s "$@"\n' % (state, os.path.join(FIXTURES, "fake_hccn_tool.sh")))
    smi = home / "npu-smi"
    smi.write_text("#!/bin/sh\ncat %s\n" % os.path.join(FIXTURES, "npu_smi_info_910b3x8.txt"))
    for tool in (hccn, smi):
        tool.chmod(0o755)
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "ascend_npu_network_hccn_tool_path": str(hccn),
        "ascend_npu_network_npu_smi_path": str(smi),
        "ascend_npu_network_hccn_conf_path": str(home / "hccn.conf"),
    }, state


def _inventory(tmp_path, plan):
    hosts, states = {}, {}
    for name in ("node01", "node02"):
        hosts[name], states[name] = _host(tmp_path, name)
    inventory = {
        "all": {
            "vars": {
                "llmops_become": False,
                "ascend_npu_network_plan": plan,
                "ascend_npu_network_defaults": {"netmask": "255.255.255.0", "gateway": "10.197.90.254", "tls": 0},
            },
            "children": {"npu_nodes": {"hosts": hosts}, "gpu_nodes": {"hosts": {}}, "k8s_control": {"hosts": {}}},
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return str(path), states


def _sets(state):
    return [line for line in (state / "calls.log").read_text().splitlines() if " -s " in " %s " % line]


def test_npu_network_converges_then_changes_nothing(ansible_playbook, tmp_path):
    plan = {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.20"}}
    inventory, states = _inventory(tmp_path, plan)
    first = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory, json_output=True)
    assert first.returncode == 0, first.output
    assert first.stats()["node01"]["changed"] >= 1 and first.stats()["node02"]["changed"] >= 1
    assert "10.197.90.27" in (tmp_path / "node02" / "state" / "dev7.address").read_text()
    conf = (tmp_path / "node01" / "hccn.conf").read_text()
    assert "address_0=10.197.90.10" in conf and "address_7=10.197.90.17" in conf
    sets_after_first = {name: len(_sets(state)) for name, state in states.items()}

    second = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory, json_output=True)
    assert second.returncode == 0, second.output
    assert second.stats()["node01"]["changed"] == 0 and second.stats()["node02"]["changed"] == 0
    assert {name: len(_sets(state)) for name, state in states.items()} == sets_after_first


def test_overlapping_plan_fails_before_any_address_is_set(ansible_playbook, tmp_path):
    # node02's range starts inside node01's (10.197.90.10-17): .15 would be used twice.
    plan = {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.15"}}
    inventory, states = _inventory(tmp_path, plan)
    result = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory)
    assert result.returncode != 0
    assert "10.197.90.15" in result.output
    for state in states.values():
        calls = state / "calls.log"
        assert not calls.exists() or _sets(state) == []


def _hccl_test(tmp_path):
    """A fake hccl_test bin folder and mpirun: all_reduce_test prints Huawei's published 8-NPU run."""
    bindir = tmp_path / "hccl_test" / "bin"
    bindir.mkdir(parents=True)
    binary = bindir / "all_reduce_test"
    binary.write_text('#!/bin/sh\necho "$@" > "%s/args"\ncat "$HCCL_FIXTURE"\n' % bindir)
    mpirun = tmp_path / "mpirun"
    mpirun.write_text('#!/bin/sh\nwhile [ "$1" != "-n" ]; do shift; done; shift 2; exec "$@"\n')
    for tool in (binary, mpirun):
        tool.chmod(0o755)
    return {
        "ascend_npu_network_hccl_test_path": str(bindir),
        "ascend_npu_network_mpirun_path": str(mpirun),
        "ascend_npu_network_hccl_env": {"HCCL_FIXTURE": os.path.join(FIXTURES, "hccl_test_all_reduce_8p.txt")},
    }


def test_npu_health_and_hccl_all_reduce_after_the_network(ansible_playbook, tmp_path):
    """hccl_check runs in the role after the addresses are set: health on every NPU, the all-reduce when
    hccl_test is there, the table printed; a planted fault stops the host naming both NPUs.

    No NPU here: npu-smi, hccn_tool, mpirun and all_reduce_test are scripts printing recorded output
    (fixtures/ascend/README.md); ansible-playbook, the role and the module run for real."""
    plan = {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.20"}}
    inventory, states = _inventory(tmp_path, plan)
    extra = dict(_hccl_test(tmp_path), ascend_npu_network_hccl_expected_busbw_gbps=40.0)
    ok = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory, "-e", json.dumps(extra), "--limit", "node01")
    assert ok.returncode == 0, ok.output
    assert "41.58" in ok.output and "all_reduce_test -b 8192 -e 1073741824" not in ok.output
    assert (tmp_path / "hccl_test" / "bin" / "args").read_text().split()[:4] == ["-b", "8192", "-e", "1073741824"]
    health_reads = [c for c in (states["node01"] / "calls.log").read_text().splitlines() if "-net_health -g" in c]
    assert len(health_reads) == 8
    # check mode on the configured host: the read-only health reads run, the all-reduce does not
    (tmp_path / "hccl_test" / "bin" / "args").unlink()
    check = ansible_playbook(
        "playbooks/prepare_nodes.yml", "-i", inventory, "-e", json.dumps(extra), "--limit", "node01", "--check"
    )
    assert check.returncode == 0, check.output
    assert "all-reduce not run: check mode" in check.output and not (tmp_path / "hccl_test" / "bin" / "args").exists()

    # NPU 3's probe times out, NPU 6 has no route to its detect IP (a link DOWN stops the host earlier, in
    # npu_facts; hccl_check's own link judgement is covered by tests/unit/plugins/modules/test_hccl_check.py)
    (states["node02"] / "dev3.net_health").write_text("Receive timeout\n")
    (states["node02"] / "dev6.net_health").write_text("Unreachable\n")
    failed = ansible_playbook(
        "playbooks/prepare_nodes.yml",
        "-i",
        inventory,
        "-e",
        json.dumps({"ascend_npu_network_hccl_bandwidth_test": "never"}),
        "--limit",
        "node02",
    )
    assert failed.returncode != 0
    assert "NPU 3 net_health is Receive timeout" in failed.output and "NPU 6 net_health is Unreachable" in failed.output
    assert "hccn_tool -i 3 -netdetect -g" in failed.output
