"""Fabric shape classification (module_utils/fabric.py).

The live shapes run on real network namespaces in tests/integration/test_fabric_check_netns.py.
"""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import fabric
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

LOCAL = ["ib0", "ib1", "ib2", "ib3"]
PEERS = {
    "gpu-b": {"ib0": "10.1.0.2", "ib1": "10.1.1.2", "ib2": "10.1.2.2", "ib3": "10.1.3.2"},
    "gpu-c": {"ib0": "10.1.0.3", "ib1": "10.1.1.3", "ib2": "10.1.2.3", "ib3": "10.1.3.3"},
}


def results(reach):
    return [
        {"local": local, "host": host, "remote": remote, "address": address, "reachable": reach(local, remote)}
        for local in LOCAL
        for host, nics in PEERS.items()
        for remote, address in nics.items()
    ]


def test_all_to_all():
    shape = fabric.classify(results(lambda local, remote: True), LOCAL, PEERS)
    assert (shape["shape"], shape["pairs"], shape["reachable"]) == ("all-to-all", 32, 32)
    assert fabric.judge(shape, "all-to-all") == [] and fabric.judge(shape, "rail") == []


def test_rail_only_refuses_expert_parallel_but_carries_rings():
    shape = fabric.classify(results(lambda local, remote: local == remote), LOCAL, PEERS)
    assert shape["shape"] == "rail-only"
    assert (shape["same_rail_reachable"], shape["same_rail_pairs"], shape["cross_rail_pairs"]) == (8, 8, 24)
    assert shape["unreachable"] == []
    assert fabric.judge(shape, "rail") == []
    (reason,) = fabric.judge(shape, "all-to-all")
    assert reason.startswith("the fabric is rail-only (0 of 24 cross-rail NIC pairs answer)")


def test_partial_names_the_silent_same_rail_pair():
    shape = fabric.classify(
        results(lambda local, remote: local == remote and not (local == "ib2" and remote == "ib2")), LOCAL, PEERS
    )
    assert shape["shape"] == "partial"
    (reason,) = fabric.judge(shape, "rail")
    assert "6 of 8 same-rail NIC pairs answer" in reason and "ib2 -> gpu-b:ib2 (10.1.2.2)" in reason


def test_none_and_report_only():
    shape = fabric.classify(results(lambda local, remote: False), LOCAL, PEERS)
    assert shape["shape"] == "none" and fabric.judge(shape, "none") == []
    assert fabric.judge(shape, "rail")


def test_parse_ip_addr():
    text = (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        "4: ib0    inet 10.1.0.1/24 brd 10.1.0.255 scope global ib0\\       valid_lft forever\n"
        "5: eth1@if9    inet 192.0.2.7/24 scope global eth1\n"
    )
    assert fabric.parse_ip_addr(text) == {"lo": "127.0.0.1", "ib0": "10.1.0.1", "eth1": "192.0.2.7"}


@pytest.mark.parametrize("peers", [{}, [], {"b": []}, {"b": {}}, {"b": {"ib0": "10.0.0.300"}}, {"b": {"ib0": None}}])
def test_bad_peers(peers):
    with pytest.raises(LlmopsError):
        fabric.validate_peers(peers)


@pytest.mark.parametrize("names", [[], "ib0", [None], ["bad name"], ["x" * 16]])
def test_bad_ifnames(names):
    with pytest.raises(LlmopsError):
        fabric.validate_ifnames(names)


def test_bad_require_and_empty():
    with pytest.raises(LlmopsError):
        fabric.judge({"shape": "all-to-all"}, "spine")
    with pytest.raises(LlmopsError):
        fabric.classify([], LOCAL, PEERS)


def test_parallel_ping_script_and_its_results():
    commands = [
        fabric.ping_command("ping", "ib0", "10.1.0.2", 1, 2),
        fabric.ping_command("ping", "ib1", "10.1.1.2", 1, 2),
    ]
    script = fabric.parallel_ping_script(commands)
    assert '( ping -n -q -c 1 -W 2 -I ib0 10.1.0.2 >/dev/null 2>&1; echo "0 $?" ) &' in script
    assert script.rstrip().endswith("wait")
    assert fabric.parse_ping_results("1 1\n0 0\ngarbage\n7 0\n", 2) == [0, 1]
    assert fabric.parse_ping_results("", 2) == [None, None]
