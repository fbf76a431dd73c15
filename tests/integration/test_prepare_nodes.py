"""playbooks/prepare_nodes.yml on two simulated Ascend hosts, through real ansible-playbook runs.

No Ascend NPU exists here: npu-smi prints a recorded `npu-smi info` of an 8 x 910B3 host and hccn_tool
is tests/unit/fixtures/ascend/fake_hccn_tool.sh, which prints the real output shapes from per-device
state files (fixtures/ascend/README.md says where each shape comes from). Each host gets its own state
folder, so the second run really reads what the first one set.
"""

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
