"""fabric_check on real network namespaces: two "GPU nodes" with two NICs each, wired as the fabric shapes.

No GPU fabric exists here, but its shape does not need one: each node is a network namespace with two veth
NICs (rails r0 and r1) and the "switches" are Linux bridges in a third namespace. The module runs inside node
A's namespace with the real ping and ip, exactly as on a host; replies cross a real kernel bridge.
  all-to-all: one bridge joins all four NICs (one subnet), every pair answers;
  rail-only:  one bridge per rail and one subnet per rail, as a rail-optimized leaf layer without spine;
  partial:    rail-only with node B's r1 down.
Needs root (network namespaces); CI runs as root, so a run without it fails instead of skipping.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from gpu_host_support import fake_nvidia_smi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
TAG = "llf%d" % (os.getpid() % 10000)


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _prerequisites():
    missing = [tool for tool in ("ip", "ping") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        message = "needs root and %s" % (", ".join(missing) or "ip/ping")
        if os.environ.get("CI"):
            pytest.fail("fabric_check netns test cannot run in CI: %s" % message)
        pytest.skip(message)


@pytest.fixture
def fabric_netns():
    """build(shape) wires the namespaces; every namespace is deleted afterwards (their veths go with them)."""
    _prerequisites()
    names = {"a": TAG + "a", "b": TAG + "b", "sw": TAG + "sw"}
    for ns in names.values():
        sh("ip", "netns", "add", ns)

    def nic(node, ifname, address, bridge):
        peer = "%s%s%s" % (TAG, node, ifname)
        sh("ip", "-n", names[node], "link", "add", ifname, "type", "veth", "peer", "name", peer, "netns", names["sw"])
        sh("ip", "-n", names[node], "addr", "add", address, "dev", ifname)
        sh("ip", "-n", names[node], "link", "set", ifname, "up")
        sh("ip", "-n", names["sw"], "link", "set", peer, "master", bridge, "up")

    def build(shape):
        for node in ("a", "b"):
            sh("ip", "-n", names[node], "link", "set", "lo", "up")
            for key in ("all", "default"):
                sh("ip", "netns", "exec", names[node], "sysctl", "-q", "-w", "net.ipv4.conf.%s.rp_filter=0" % key)
            # several NICs in one subnet: answer ARP only on the NIC that owns the address
            sh("ip", "netns", "exec", names[node], "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1")
        bridges = ["brall"] if shape == "all-to-all" else ["brr0", "brr1"]
        for bridge in bridges:
            sh("ip", "-n", names["sw"], "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", names["sw"], "link", "set", bridge, "up")
        if shape == "all-to-all":
            addresses = {("a", "r0"): "10.77.0.1/24", ("a", "r1"): "10.77.0.2/24"}
            addresses.update({("b", "r0"): "10.77.0.3/24", ("b", "r1"): "10.77.0.4/24"})
        else:
            addresses = {("a", "r0"): "10.77.0.1/24", ("a", "r1"): "10.77.1.1/24"}
            addresses.update({("b", "r0"): "10.77.0.2/24", ("b", "r1"): "10.77.1.2/24"})
        for (node, ifname), address in addresses.items():
            nic(node, ifname, address, "brall" if shape == "all-to-all" else "br" + ifname)
        if shape == "partial":
            sh("ip", "-n", names["b"], "link", "set", "r1", "down")
        return names, {"node-b": {"r0": addresses[("b", "r0")][:-3], "r1": addresses[("b", "r1")][:-3]}}

    yield build
    for ns in names.values():
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def run_in(netns, tmp_path, args):
    """The module's own entry point, with its args file, inside node A's namespace."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    module = os.path.join(ROOT, "plugins", "modules", "fabric_check.py")
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, module, str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "shape, require, passed",
    [
        ("all-to-all", "all-to-all", True),
        ("rail-only", "rail", True),
        ("rail-only", "all-to-all", False),
        ("partial", "rail", False),
    ],
)
def test_fabric_shapes(fabric_netns, tmp_path, shape, require, passed):
    names, peers = fabric_netns(shape)
    result = run_in(names["a"], tmp_path, {"local_interfaces": ["r0", "r1"], "peers": peers, "require": require})
    assert result["shape"]["shape"] == shape, result
    assert result["passed"] is passed and bool(result.get("failed")) is not passed
    assert result["addresses"]["r0"] == "10.77.0.1"
    if shape == "rail-only":
        assert (result["shape"]["same_rail_reachable"], result["shape"]["cross_rail_reachable"]) == (2, 0)
    if not passed and require == "all-to-all":
        assert "expert-parallel all-to-all (DeepEP/NVSHMEM) needs every NIC" in result["msg"]
    if shape == "partial":
        assert "r1 -> node-b:r1 (10.77.1.2)" in result["msg"]


def test_addresses_only_and_bad_input(fabric_netns, tmp_path):
    names, _peers = fabric_netns("rail-only")
    report = run_in(names["a"], tmp_path, {"local_interfaces": ["r0", "r1"], "require": "none"})
    assert report["addresses"] == {"r0": "10.77.0.1", "r1": "10.77.1.1"} and report["passed"]
    missing = run_in(names["a"], tmp_path, {"local_interfaces": ["ib7"]})
    assert missing["failed"] and "ib7 have no IPv4 address" in missing["msg"]
    bad = run_in(names["a"], tmp_path, {"local_interfaces": ["r0"], "peers": {"b": {"r0": "not-an-ip"}}})
    assert bad["failed"] and "not an IPv4 address" in bad["msg"] and "Traceback" not in json.dumps(bad)


def _netns_python(tmp_path, netns):
    """An interpreter that runs Ansible's module payload inside the node's namespace (the host's own view)."""
    wrapper = tmp_path / ("python-" + netns)
    wrapper.write_text('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (netns, sys.executable))
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.parametrize("require, ok", [("rail", True), ("all-to-all", False)])
def test_prepare_stage_measures_the_fabric(fabric_netns, tmp_path, ansible_playbook, require, ok):
    """playbooks/prepare_nodes.yml with gpu_node_checks_fabric_check: both GPU hosts report, then ping each other."""
    names, _peers = fabric_netns("rail-only")
    smi = fake_nvidia_smi(tmp_path / "nvidia-smi")
    hosts = {
        host: {
            "ansible_connection": "local",
            "ansible_python_interpreter": _netns_python(tmp_path, names[node]),
            "gpu_node_checks_nvidia_smi_path": smi,
            "gpu_node_checks_sysfs_root": str(tmp_path / "no-rdma"),
        }
        for host, node in (("gpu01", "a"), ("gpu02", "b"))
    }
    inventory = {
        "all": {
            "vars": {
                "llmops_become": False,
                "gpu_node_checks_fail_on_problems": False,
                "gpu_node_checks_fabric_check": True,
                "gpu_node_checks_fabric_interfaces": ["r0", "r1"],
                "gpu_node_checks_fabric_require": require,
            },
            "children": {
                "gpu_nodes": {"hosts": hosts},
                "npu_nodes": {"hosts": {}},
                "k8s_control": {"hosts": {}},
            },
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    result = ansible_playbook("playbooks/prepare_nodes.yml", "-i", str(path))
    assert (result.returncode == 0) is ok, result.output
    if ok:
        assert "Check that the GPU NICs reach the other nodes (rail)" in result.output
    else:
        assert "the fabric is rail-only (0 of 2 cross-rail NIC pairs answer)" in result.output
