# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host facts and decisions of the bare-metal roles (nvidia_driver, fabric_manager): pure Python.

Reads what the running kernel says (/sys/module/nvidia/version, /proc/driver/nvidia/version,
/proc/modules) and what the PCI bus holds (/sys/bus/pci/devices/*/{vendor,device,class}), all under a
``root`` so tests read recorded trees, and decides whether a reboot is needed and whether a pinned
version may replace the installed one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

REBOOT_POLICIES = ("never", "when_needed", "always")
NVIDIA_VENDOR = "0x10de"
# NVSwitch PCI device IDs (pci.ids, vendor 10de, class 0680 "Bridge"): the systems that need Fabric Manager.
NVSWITCH_IDS = {
    "0x1ac0": "NVSwitch gen1 (DGX-2/HGX-2, V100)",
    "0x1ac1": "NVSwitch gen1 (DGX-2/HGX-2, V100)",
    "0x1ac2": "NVSwitch gen1 (DGX-2/HGX-2, V100)",
    "0x1af1": "NVSwitch gen2 (HGX A100/A800)",
    "0x22a3": "NVSwitch gen3 (HGX H100/H800/H200)",
}
_DRIVER_VERSION_RE = re.compile(r"^(?P<branch>\d{3})\.\d{2,3}(\.\d{2,3})?$")
_PROC_VERSION_RE = re.compile(r"Kernel Module(?: for \S+)?\s+(?P<version>\d{3}\.\d+(?:\.\d+)?)\s")


def driver_branch(version):
    """Branch of a full driver version ('550.127.05' -> '550'); refuses anything else."""
    match = _DRIVER_VERSION_RE.match(str(version or "").strip())
    if not match:
        raise LlmopsError(
            "NVIDIA driver version %r is not a full version like 550.127.05 (branch.minor.patch): "
            "pin the exact version, not a branch" % (version,)
        )
    return match.group("branch")


def upstream_version(package_version):
    """The upstream part of a dpkg/rpm version: '1:535.261.03-1~deb12u1' -> '535.261.03'."""
    if not package_version:
        return None
    text = str(package_version).split(":", 1)[-1]
    return text.rsplit("-", 1)[0] if "-" in text else text


def repository_versions(lines, manager="apt"):
    """Versions a repository offers for one package, from the package manager's own listing.

    apt: `apt-cache madison <pkg>` lines (``pkg | version | source``). dnf: `dnf repoquery --queryformat
    '%{epoch}:%{version}-%{release}' <pkg>` lines (one ``epoch:version-release`` a line).
    """
    if manager not in ("apt", "dnf"):
        raise LlmopsError("package manager %r: apt or dnf" % (manager,))
    if manager == "apt":
        return [line.split("|")[1].strip() for line in lines or [] if line.count("|") >= 2]
    return [line.strip() for line in lines or [] if re.match(r"^\d+:\S+-\S+$", line.strip())]


def packages_at_version(packages, version, patterns):
    """Names of installed packages at ``version`` (upstream part) whose name matches one of the glob
    ``patterns``; ``packages`` is package_facts' ``{name: [{version, ...}]}``. The driver's exact-version
    dependencies (nvidia-driver-libs, nvidia-persistenced, ...) that a lock must cover with the named ones."""
    names = set()
    for name, entries in (packages or {}).items():
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns or []):
            continue
        if any(upstream_version(entry.get("version")) == str(version) for entry in entries or []):
            names.add(name)
    return sorted(names)


def parse_proc_driver_version(text):
    """Loaded driver version from /proc/driver/nvidia/version (open and proprietary module banners)."""
    match = _PROC_VERSION_RE.search(text or "")
    return match.group("version") if match else None


def parse_proc_modules(text):
    """Names of the loaded kernel modules (/proc/modules, one per line, the name first)."""
    return {line.split()[0] for line in (text or "").splitlines() if line.strip()}


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def read_kernel_state(root="/"):
    """What the running kernel has loaded: nvidia version (None when not loaded) and whether nouveau is."""
    modules_text = _read(os.path.join(root, "proc/modules"))
    modules = parse_proc_modules(modules_text)
    loaded = (_read(os.path.join(root, "sys/module/nvidia/version")) or "").strip() or None
    if not loaded:
        loaded = parse_proc_driver_version(_read(os.path.join(root, "proc/driver/nvidia/version")))
    banner = _read(os.path.join(root, "proc/driver/nvidia/version")) or ""
    return {
        "kernel_release": (_read(os.path.join(root, "proc/sys/kernel/osrelease")) or "").strip() or None,
        "open_kernel_module": ("Open Kernel Module" in banner) if banner else None,
        "kernel_visible": modules_text is not None,
        "loaded_driver_version": loaded,
        "nvidia_loaded": "nvidia" in modules or loaded is not None,
        "nouveau_loaded": "nouveau" in modules,
    }


def read_pci_devices(root="/"):
    """PCI devices from sysfs: list of dicts (address, vendor, device, class), sorted by address."""
    base = os.path.join(root, "sys/bus/pci/devices")
    devices = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return devices
    for name in names:
        fields = {
            key: (_read(os.path.join(base, name, key)) or "").strip().lower() for key in ("vendor", "device", "class")
        }
        devices.append(dict(address=name, **fields))
    return devices


def classify_pci(devices):
    """NVIDIA GPUs (display/3D class) and NVSwitches among the PCI devices."""
    gpus, switches = [], []
    for dev in devices:
        if dev.get("vendor") != NVIDIA_VENDOR:
            continue
        if dev.get("device") in NVSWITCH_IDS:
            switches.append(dict(dev, model=NVSWITCH_IDS[dev["device"]]))
        elif str(dev.get("class", "")).startswith("0x03"):
            gpus.append(dev)
    return {"gpus": gpus, "nvswitches": switches}


GPUDIRECT_MODES = ("auto", "peermem", "dmabuf", "none")


def _kernel_tuple(release):
    match = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def gpudirect_mode(requested, state):
    """GPUDirect RDMA path and why: DMA-BUF needs the open GPU kernel module and Linux >= 5.12
    (NVIDIA GPUDirect RDMA guide; what the GPU Operator checks), else the nvidia-peermem module."""
    if requested not in GPUDIRECT_MODES:
        raise LlmopsError("GPUDirect mode must be one of %s, not %r" % (", ".join(GPUDIRECT_MODES), requested))
    if requested != "auto":
        return requested, "%s asked for in the inventory" % requested
    kernel = _kernel_tuple(state.get("kernel_release"))
    if state.get("open_kernel_module") and kernel and kernel >= (5, 12):
        return "dmabuf", "open NVIDIA kernel module and kernel %s (>= 5.12): DMA-BUF, no nvidia-peermem" % state[
            "kernel_release"
        ]
    if state.get("open_kernel_module") is None:
        why = "no loaded NVIDIA module to tell open from proprietary"
    elif not state.get("open_kernel_module"):
        why = "proprietary NVIDIA kernel module (DMA-BUF needs the open one)"
    else:
        why = "kernel %s is older than 5.12" % state.get("kernel_release")
    return "peermem", why + ": nvidia-peermem"


def reboot_decision(policy, installed_version, state, changed=False, running_kernel=True):
    """Whether to reboot, and why: the reason is printed by the role whatever the answer.

    ``when_needed`` reboots when nouveau is loaded (it holds the GPUs, nvidia cannot bind) or the
    loaded nvidia module differs from the installed one; ``always`` also reboots after any change the
    role made; ``never`` only reports. No running kernel (a chroot or image build): never.
    """
    if policy not in REBOOT_POLICIES:
        raise LlmopsError("llmops_reboot must be one of %s, not %r" % (", ".join(REBOOT_POLICIES), policy))
    loaded = state.get("loaded_driver_version")
    if not running_kernel or not state.get("kernel_visible", True):
        return {
            "reboot": False,
            "load_module": False,
            "reason": "no reboot: no running kernel of its own (chroot/image), it boots with the installed driver",
        }
    need, load, why = False, False, None
    if state.get("nouveau_loaded"):
        need, why = True, "nouveau is loaded and holds the GPUs; the blacklist takes effect after a reboot"
    elif installed_version and loaded and upstream_version(installed_version) != loaded:
        need, why = (
            True,
            "loaded nvidia module %s differs from the installed %s" % (loaded, upstream_version(installed_version)),
        )
    elif installed_version and not loaded:
        load, why = True, "nvidia module not loaded and nouveau absent: modprobe nvidia, no reboot"
    elif installed_version:
        why = "loaded nvidia module %s matches the installed driver" % loaded
    else:
        why = "no NVIDIA driver installed"
    if policy == "always" and changed and not need:
        need, load, why = True, False, "llmops_reboot=always and this run changed the host (%s)" % why
    if need and policy == "never":
        return {"reboot": False, "load_module": False, "reason": "reboot needed but llmops_reboot=never: " + why}
    return {"reboot": need, "load_module": load, "reason": ("reboot: " if need else "no reboot: ") + why}


def check_version_change(installed_version, wanted_version, allow_change):
    """Refuse to move an installed driver to another version unless allowed; returns the action.

    'install' (nothing installed), 'keep' (same upstream version), 'change' (allowed change).
    """
    driver_branch(wanted_version)
    installed = upstream_version(installed_version)
    if not installed:
        return "install"
    if installed == wanted_version:
        return "keep"
    if not allow_change:
        raise LlmopsError(
            "the host has NVIDIA driver %s installed and the pin says %s: refusing to change it "
            "(set nvidia_driver_allow_version_change: true to replace it; Fabric Manager and the "
            "container images must move with it)" % (installed, wanted_version)
        )
    return "change"


def pick_locked_version(component, available_versions, driver_version):
    """The package version of a component (Fabric Manager, ...) locked to the driver's exact version.

    ``available_versions``: what the repository offers (dpkg/rpm form). Refuses, before anything is
    installed, when none of them is the driver's version, naming what is there.
    """
    driver_branch(driver_version)
    available = [str(v).strip() for v in available_versions or [] if str(v).strip()]
    for version in available:
        if upstream_version(version) == driver_version:
            return version
    if not available:
        raise LlmopsError(
            "%s is not available from the configured repository; it must be the NVIDIA driver's exact "
            "version %s" % (component, driver_version)
        )
    raise LlmopsError(
        "%s %s is not in the repository (it has %s): it must match the NVIDIA driver %s exactly "
        "(a mismatch leaves the NVSwitch fabric uninitialised and CUDA reports no devices)"
        % (component, driver_version, ", ".join(sorted({upstream_version(v) for v in available})), driver_version)
    )


def parse_version_info(text):
    """key=value pairs of an Ascend version.info (driver or firmware; `Version=` is the package version)."""
    pairs = {}
    for line in (text or "").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def ascend_install_plan(installed_driver, installed_firmware, driver_version, firmware_version):
    """Installer runs for the Ascend driver and firmware, in the documented order, each only when its
    installed version differs: a first install is driver then firmware (``--full``), an upgrade is
    firmware then driver (``--upgrade``), as Huawei's HDK install guide orders them."""
    if not driver_version or not firmware_version:
        raise LlmopsError("ascend_driver needs both the driver and the firmware version pinned")
    steps = []
    if installed_driver != driver_version:
        steps.append(
            {
                "component": "driver",
                "action": "upgrade" if installed_driver else "full",
                "from": installed_driver,
                "to": driver_version,
            }
        )
    if installed_firmware != firmware_version:
        steps.append(
            {
                "component": "firmware",
                "action": "upgrade" if installed_firmware else "full",
                "from": installed_firmware,
                "to": firmware_version,
            }
        )
    if installed_driver or installed_firmware:
        steps.sort(key=lambda step: step["component"] != "firmware")
    return steps


def ascend_reboot_decision(policy, steps, running_kernel=True):
    """Reboot after an Ascend driver/firmware run: the firmware and a new driver take effect at boot."""
    if policy not in REBOOT_POLICIES:
        raise LlmopsError("llmops_reboot must be one of %s, not %r" % (", ".join(REBOOT_POLICIES), policy))
    if not steps:
        return {"reboot": False, "reason": "no reboot: driver and firmware already at the pinned versions"}
    what = ", ".join("%s %s -> %s" % (s["component"], s["from"] or "none", s["to"]) for s in steps)
    if not running_kernel:
        return {"reboot": False, "reason": "no reboot: no running kernel of its own (chroot/image) after " + what}
    if policy == "never":
        return {"reboot": False, "reason": "reboot needed but llmops_reboot=never: " + what}
    return {"reboot": True, "reason": "reboot: %s take effect at boot" % what}
