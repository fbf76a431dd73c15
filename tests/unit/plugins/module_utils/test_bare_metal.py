"""plugins/module_utils/bare_metal.py on recorded trees (fixtures/bare_metal/README.md says which are real)."""

import importlib.util
import os

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import bare_metal
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "bare_metal")
_spec = importlib.util.spec_from_file_location("bare_metal_trees", os.path.join(FIXTURES, "trees.py"))
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)


def host_tree(name):
    return trees.materialize(name)


def test_real_h200_vm_state():
    root = host_tree("h200_vm_580")
    state = bare_metal.read_kernel_state(root)
    assert state == {
        "kernel_release": "6.18.44-fc-v657-gpu",
        "open_kernel_module": True,
        "kernel_visible": True,
        "loaded_driver_version": "580.159.04",
        "nvidia_loaded": True,
        "nouveau_loaded": False,
    }
    pci = bare_metal.classify_pci(bare_metal.read_pci_devices(root))
    assert [g["address"] for g in pci["gpus"]] == ["0000:00:06.0"] and pci["nvswitches"] == []


def test_proc_version_banner_of_both_module_flavours():
    with open(os.path.join(host_tree("h200_vm_580"), "proc", "driver", "nvidia", "version")) as handle:
        assert bare_metal.parse_proc_driver_version(handle.read()) == "580.159.04"
    with open(os.path.join(host_tree("hgx_a800_stale_535"), "proc", "driver", "nvidia", "version")) as handle:
        assert bare_metal.parse_proc_driver_version(handle.read()) == "535.161.08"
    assert bare_metal.parse_proc_driver_version("garbage") is None


def test_hgx_a800_has_six_nvswitches():
    pci = bare_metal.classify_pci(bare_metal.read_pci_devices(host_tree("hgx_a800_nouveau")))
    assert len(pci["gpus"]) == 8 and len(pci["nvswitches"]) == 6
    assert pci["nvswitches"][0]["model"].startswith("NVSwitch gen2")


@pytest.mark.parametrize(
    "fixture,installed,policy,changed,reboot,load,words",
    [
        ("h200_vm_580", "580.159.04-0ubuntu1", "when_needed", False, False, False, "matches"),
        ("h200_vm_580", "580.159.04-0ubuntu1", "always", False, False, False, "matches"),
        ("h200_vm_580", "580.159.04-0ubuntu1", "always", True, True, False, "llmops_reboot=always"),
        (
            "h200_vm_580",
            "1:580.172.08-1",
            "when_needed",
            True,
            True,
            False,
            "580.159.04 differs from the installed 580.172.08",
        ),
        ("hgx_a800_stale_535", "550.127.05-1", "when_needed", False, True, False, "535.161.08 differs"),
        ("hgx_a800_stale_535", "550.127.05-1", "never", False, False, False, "reboot needed but llmops_reboot=never"),
        ("hgx_a800_nouveau", "550.127.05-1", "when_needed", True, True, False, "nouveau is loaded"),
        ("hgx_a800_nouveau", None, "when_needed", False, True, False, "nouveau is loaded"),
    ],
)
def test_reboot_decision(fixture, installed, policy, changed, reboot, load, words):
    state = bare_metal.read_kernel_state(host_tree(fixture))
    decision = bare_metal.reboot_decision(policy, installed, state, changed=changed)
    assert (decision["reboot"], decision["load_module"]) == (reboot, load) and words in decision["reason"]


def test_installed_but_not_loaded_means_modprobe(tmp_path):
    root = tmp_path / "r"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "modules").write_text("mlx5_ib 479232 0 - Live 0xffffffffc0880000\n")
    decision = bare_metal.reboot_decision("when_needed", "550.127.05-1", bare_metal.read_kernel_state(str(root)))
    assert (
        decision == {"reboot": False, "load_module": True, "reason": decision["reason"]}
        and "modprobe" in decision["reason"]
    )


def test_chroot_never_reboots(tmp_path):
    # A chroot's /proc is the host's (or absent): the decision must not be taken from it.
    state = bare_metal.read_kernel_state(str(tmp_path / "nothing-mounted"))
    assert state["kernel_visible"] is False
    for running in (True, False):
        decision = bare_metal.reboot_decision(
            "always", "535.261.03-1~deb12u1", state, changed=True, running_kernel=running
        )
        assert decision["reboot"] is False and "chroot" in decision["reason"]


def test_versions():
    assert bare_metal.driver_branch("550.127.05") == "550" and bare_metal.driver_branch("535.261.03") == "535"
    for bad in ("550", "550.127.*", "latest", None, "R550"):
        with pytest.raises(LlmopsError, match="full version"):
            bare_metal.driver_branch(bad)
    assert bare_metal.upstream_version("1:535.261.03-1~deb12u1") == "535.261.03"
    assert bare_metal.upstream_version("550.127.05-0ubuntu1") == "550.127.05"
    assert bare_metal.upstream_version("550.127.05") == "550.127.05" and bare_metal.upstream_version(None) is None
    with pytest.raises(LlmopsError, match="llmops_reboot"):
        bare_metal.reboot_decision("sometimes", None, {})


def test_version_change_is_refused_unless_allowed():
    assert bare_metal.check_version_change(None, "535.261.03", False) == "install"
    assert bare_metal.check_version_change("535.261.03-1~deb12u1", "535.261.03", False) == "keep"
    with pytest.raises(LlmopsError, match="driver 535.261.03 installed and the pin says 535.247.01"):
        bare_metal.check_version_change("535.261.03-1~deb12u1", "535.247.01", False)
    assert bare_metal.check_version_change("535.261.03-1~deb12u1", "535.247.01", True) == "change"


def test_locked_component_must_match_the_driver():
    fm = ["550.144.03-1", "550.127.05-1", "535.261.03-1"]
    assert bare_metal.pick_locked_version("Fabric Manager", fm, "550.127.05") == "550.127.05-1"
    with pytest.raises(
        LlmopsError,
        match=r"Fabric Manager 550.90.07 is not in the repository \(it has 535.261.03, 550.127.05, 550.144.03\)",
    ):
        bare_metal.pick_locked_version("Fabric Manager", fm, "550.90.07")
    with pytest.raises(LlmopsError, match="not available"):
        bare_metal.pick_locked_version("Fabric Manager", [], "550.127.05")


def test_gpudirect_path():
    h200 = bare_metal.read_kernel_state(host_tree("h200_vm_580"))
    assert bare_metal.gpudirect_mode("auto", h200)[0] == "dmabuf"
    stale = bare_metal.read_kernel_state(host_tree("hgx_a800_stale_535"))
    mode, why = bare_metal.gpudirect_mode("auto", stale)
    assert mode == "peermem" and "proprietary" in why
    mode, why = bare_metal.gpudirect_mode("auto", bare_metal.read_kernel_state(host_tree("hgx_a800_nouveau")))
    assert mode == "peermem" and "no loaded NVIDIA module" in why
    assert bare_metal.gpudirect_mode("auto", dict(h200, kernel_release="5.4.0-200-generic"))[1].startswith("kernel 5.4")
    assert bare_metal.gpudirect_mode("peermem", h200) == ("peermem", "peermem asked for in the inventory")
    with pytest.raises(LlmopsError, match="GPUDirect mode"):
        bare_metal.gpudirect_mode("gdrcopy", h200)


# The version.info shapes of Ascend HDK 24.1 (driver) and 7.5.0.3.220 (firmware) as installed under
# /usr/local/Ascend/{driver,firmware}/ (fields as Huawei's install guide shows them).
DRIVER_INFO = "Version=24.1.0\nascendhal_version=7.35.23\nInnerversion=V100R001C19SPC001B203\npackage_version=24.1.0\n"
FIRMWARE_INFO = "Version=7.5.0.3.220\nfirmware_version=1.0\npackage_version=24.1.0\n"


def test_ascend_plan_order_and_idempotence():
    assert bare_metal.parse_version_info(DRIVER_INFO)["Version"] == "24.1.0"
    assert bare_metal.parse_version_info(FIRMWARE_INFO)["Version"] == "7.5.0.3.220"
    first = bare_metal.ascend_install_plan(None, None, "24.1.0", "7.5.0.3.220")
    assert [(s["component"], s["action"]) for s in first] == [("driver", "full"), ("firmware", "full")]
    upgrade = bare_metal.ascend_install_plan("23.0.0", "7.1.0.3.220", "24.1.0", "7.5.0.3.220")
    assert [(s["component"], s["action"]) for s in upgrade] == [("firmware", "upgrade"), ("driver", "upgrade")]
    only_fw = bare_metal.ascend_install_plan("24.1.0", "7.1.0.3.220", "24.1.0", "7.5.0.3.220")
    assert [(s["component"], s["action"]) for s in only_fw] == [("firmware", "upgrade")]
    assert bare_metal.ascend_install_plan("24.1.0", "7.5.0.3.220", "24.1.0", "7.5.0.3.220") == []
    with pytest.raises(LlmopsError, match="both"):
        bare_metal.ascend_install_plan(None, None, "24.1.0", "")


def test_ascend_reboot():
    steps = bare_metal.ascend_install_plan("24.1.0", "7.1.0.3.220", "24.1.0", "7.5.0.3.220")
    assert bare_metal.ascend_reboot_decision("when_needed", steps)["reboot"] is True
    assert "firmware 7.1.0.3.220 -> 7.5.0.3.220" in bare_metal.ascend_reboot_decision("never", steps)["reason"]
    assert bare_metal.ascend_reboot_decision("always", steps, running_kernel=False)["reboot"] is False
    assert bare_metal.ascend_reboot_decision("when_needed", [])["reboot"] is False
    with pytest.raises(LlmopsError):
        bare_metal.ascend_reboot_decision("maybe", [])
