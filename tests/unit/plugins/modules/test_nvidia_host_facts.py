"""nvidia_host_facts on recorded host trees (fixtures/bare_metal), and gpu_facts' expected_driver_version
on the real 2 x H200 nvidia-smi recordings (fixtures/nvidia_smi)."""

import importlib.util
import os

from ansible_collections.llmops.inference.plugins.modules import gpu_facts, nvidia_host_facts

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures"))


_spec = importlib.util.spec_from_file_location("bare_metal_trees", os.path.join(FIXTURES, "bare_metal", "trees.py"))
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)


def tree(name):
    return trees.materialize(name)


def test_real_h200_vm_needs_no_reboot(run):
    result = run(nvidia_host_facts.main, {"root": tree("h200_vm_580"), "installed_version": "580.159.04-0ubuntu1"})
    assert not result.get("failed") and result["changed"] is False
    assert result["loaded_driver_version"] == "580.159.04" and result["nouveau_loaded"] is False
    assert len(result["gpus"]) == 1 and result["nvswitches"] == []
    assert result["reboot"] is False and "matches" in result["reason"]


def test_nouveau_host_reboots_unless_never(run):
    args = {"root": tree("hgx_a800_nouveau"), "installed_version": "550.127.05-1", "changed": True}
    assert run(nvidia_host_facts.main, args)["reboot"] is True
    never = run(nvidia_host_facts.main, dict(args, reboot_policy="never"), check_mode=True)
    assert never["reboot"] is False and never["reason"].startswith("reboot needed but llmops_reboot=never")
    assert len(never["nvswitches"]) == 6


def test_pin_checks(run):
    keep = run(
        nvidia_host_facts.main,
        {"root": tree("hgx_a800_stale_535"), "installed_version": "550.127.05-1", "wanted_version": "550.127.05"},
    )
    assert keep["version_action"] == "keep" and keep["reboot"] is True and "535.161.08 differs" in keep["reason"]
    refused = run(nvidia_host_facts.main, {"installed_version": "550.127.05-1", "wanted_version": "550.144.03"})
    assert refused["failed"] and "refusing to change it" in refused["msg"]
    loose = run(nvidia_host_facts.main, {"wanted_version": "550"})
    assert loose["failed"] and "not a full version" in loose["msg"]
    bad = run(nvidia_host_facts.main, {"reboot_policy": "sometimes"})
    assert bad["failed"] and "reboot_policy" in bad["msg"]


NVIDIA_SMI = """case "$*" in
  --query-gpu*) cat {fx}/h200x2_nvidia-smi-query-gpu.csv ;;
  "topo -m") cat {fx}/h200x2_nvidia-smi-topo-m.txt ;;
  "nvlink -s") cat {fx}/h200x2_nvidia-smi-nvlink-s.txt ;;
  "-q") cat {fx}/h200x2_nvidia-smi-q.txt ;;
  "") cat {fx}/h200x2_nvidia-smi.txt ;;
esac""".format(fx=os.path.join(FIXTURES, "nvidia_smi"))


def test_gpu_facts_expected_driver_version(run, fake_tool, empty_path):
    fake_tool("nvidia-smi", NVIDIA_SMI)
    ok = run(gpu_facts.main, {"expected_driver_version": "580.159.04", "check_xid": False})
    assert not ok.get("failed") and ok["problems"] == [] and ok["driver_version"] == "580.159.04"
    stale = run(gpu_facts.main, {"expected_driver_version": "580.172.08", "check_xid": False})
    assert stale["failed"] and "driver 580.159.04 is running, 580.172.08 expected" in stale["msg"]
    report = run(
        gpu_facts.main, {"expected_driver_version": "580.172.08", "check_xid": False, "fail_on_problems": False}
    )
    assert report["problems"] == [
        "driver 580.159.04 is running, 580.172.08 expected (the nvidia_driver pin): "
        "reboot if it is installed, else re-run nvidia_driver"
    ]
