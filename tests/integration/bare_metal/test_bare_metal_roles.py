"""Stage 1's install roles through playbooks/prepare_nodes.yml on a real Debian 12 rootfs (chroot).

Real: ansible-playbook, the community.general.chroot connection, Debian's apt/dpkg/dkms/systemctl/
update-initramfs, and the NVIDIA driver itself: Debian non-free's nvidia-driver 535.261.03-1 (bookworm's
point-release version; bookworm-updates carries 535.309.01, used as the "pin moved" version), installed
with its DKMS package from deb.debian.org.
Synthetic (NVIDIA's repositories are unreachable here): Fabric Manager packages, built by apt_repo.py
with the real package names/versions and served by a local file: repository; the real apt resolves them.
Hardware facts (NVSwitch on the PCI bus, loaded module, nouveau) come from recorded trees in
tests/unit/fixtures/bare_metal (README there says which are real recordings).

One rootfs per session; every test stands alone all the same (any order, any -k selection): the module
fixture ``debian_driver`` runs check mode before the driver is installed, then the install and its re-run,
once, for whichever driver test asks first; the other tests assert on states they set up or read themselves.
"""

import types

import apt_repo
import pytest

PLAYBOOK = "playbooks/prepare_nodes.yml"
DRIVER = "535.261.03"  # Debian bookworm non-free, nvidia-graphics-drivers 535.261.03-1
NEWER = "535.309.01"  # bookworm-updates


def driver_vars(**extra):
    values = {
        "nvidia_driver_enabled": True,
        "nvidia_driver_version": DRIVER,
        "nvidia_driver_source": "distro",
        # A chroot shares the host's kernel, whose headers Debian does not have: DKMS registers the
        # module source and builds it when the image's own kernel and headers are installed.
        "nvidia_driver_kernel_headers_package": "",
    }
    values.update(extra)
    return values


def dpkg_version(rootfs, package):
    result = rootfs.run("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package)
    status, _space, version = result.stdout.partition(" ")
    return version if result.returncode == 0 and status == "installed" else None


def play(ansible_playbook, chroot_inventory, host_vars, *args, tags="nvidia_driver"):
    return ansible_playbook(PLAYBOOK, "-i", chroot_inventory(host_vars), "--tags", tags, *args, json_output=True)


@pytest.fixture(scope="module")
def debian_driver(ansible_playbook, chroot_inventory, debian_rootfs):
    """Check mode before the driver is installed, then the install and a re-run; what each saw."""
    state = types.SimpleNamespace()
    before = debian_rootfs.listing()
    state.check_installed = dpkg_version(debian_rootfs, "nvidia-driver")
    state.check = play(ansible_playbook, chroot_inventory, driver_vars(), "--check", "--diff")
    state.check_changed_files = debian_rootfs.changed_since(before)
    state.first = play(ansible_playbook, chroot_inventory, driver_vars())
    state.second = play(ansible_playbook, chroot_inventory, driver_vars())
    return state


def test_check_mode_on_a_fresh_rootfs_changes_nothing(debian_driver):
    result = debian_driver.check
    assert result.returncode == 0, result.output
    assert "check mode cannot simulate (apt pin not yet written), 535.261.03" in " ".join(result.changed_tasks())
    assert debian_driver.check_changed_files == []
    assert debian_driver.check_installed is None


def test_driver_installs_pinned_held_and_reruns_unchanged(debian_driver, debian_rootfs):
    first = debian_driver.first
    assert first.returncode == 0, first.output
    for package in ("nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi", "libcuda1"):
        assert dpkg_version(debian_rootfs, package) == DRIVER + "-1", package
    held = debian_rootfs.run("apt-mark", "showhold").stdout.split()
    assert {"nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi", "libcuda1"} <= set(held)
    assert "Pin: version 535.261.03-*" in debian_rootfs.read("/etc/apt/preferences.d/llmops-nvidia-driver.pref")
    # Recommends stay out (nvidia-driver recommends nvidia-settings, a GTK tool); its Depends pull Xorg in.
    assert dpkg_version(debian_rootfs, "nvidia-settings") is None
    assert "blacklist nouveau" in debian_rootfs.read("/etc/modprobe.d/llmops-blacklist-nouveau.conf")
    assert debian_rootfs.run("systemctl", "is-enabled", "nvidia-persistenced").stdout.strip() == "enabled"
    assert "nvidia-current/" + DRIVER in debian_rootfs.run("dkms", "status").stdout
    assert first.task_results("Rebuild the initramfs"), "the blacklist changed: the handler must run"
    reason = first.task_results("Reboot decision")[0]["msg"]
    assert "no reboot" in reason and "chroot" in reason

    second = debian_driver.second
    assert second.returncode == 0, second.output
    assert second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()
    assert not second.task_results("Rebuild the initramfs")


def test_check_mode_on_the_installed_rootfs_changes_nothing(
    debian_driver, ansible_playbook, chroot_inventory, debian_rootfs
):
    before = debian_rootfs.listing()
    result = play(ansible_playbook, chroot_inventory, driver_vars(), "--check", "--diff")
    assert result.returncode == 0, result.output
    assert result.stats()["rootfs01"]["changed"] == 0, result.changed_tasks()
    assert debian_rootfs.changed_since(before) == []


def test_a_moved_pin_is_refused_before_anything_changes(
    debian_driver, ansible_playbook, chroot_inventory, debian_rootfs
):
    before = debian_rootfs.listing()
    result = play(ansible_playbook, chroot_inventory, driver_vars(nvidia_driver_version=NEWER))
    assert result.returncode != 0
    assert "driver 535.261.03 installed and the pin says 535.309.01: refusing" in result.output
    assert dpkg_version(debian_rootfs, "nvidia-driver") == DRIVER + "-1"
    assert debian_rootfs.changed_since(before) == []


def test_a_pin_the_repository_lacks_is_refused(ansible_playbook, chroot_inventory, debian_rootfs):
    before = debian_rootfs.listing()
    result = play(
        ansible_playbook,
        chroot_inventory,
        driver_vars(nvidia_driver_version="535.999.01", nvidia_driver_allow_version_change=True),
    )
    assert result.returncode != 0
    assert "nvidia_driver: nvidia-driver 535.999.01 is not in the configured repositories" in result.output
    assert debian_rootfs.changed_since(before) == []


def test_an_unsupported_os_is_refused_untouched(ansible_playbook, chroot_inventory, debian_rootfs):
    before = debian_rootfs.listing()
    only_ubuntu = [{"name": "Ubuntu", "versions": ["24"]}]
    result = play(ansible_playbook, chroot_inventory, driver_vars(bare_metal_common_supported_os=only_ubuntu))
    assert result.returncode != 0
    assert "nvidia_driver: Debian 12" in result.output and "is not supported (supported: Ubuntu 24)" in result.output
    assert debian_rootfs.changed_since(before) == []


def fm_vars(host_tree, repo, **extra):
    values = {
        "fabric_manager_enabled": True,
        "nvidia_driver_version": DRIVER,
        "fabric_manager_facts_root": host_tree,
        "fabric_manager_repo_url": repo,
        "fabric_manager_repo_trusted": True,
    }
    values.update(extra)
    return values


def test_fabric_manager_is_skipped_without_nvswitch(
    ansible_playbook, chroot_inventory, debian_rootfs, host_tree_in_rootfs, local_repo
):
    repo = local_repo("fm-ok", [apt_repo.fabric_manager(DRIVER), apt_repo.fabric_manager(NEWER)])
    tree = host_tree_in_rootfs("h200_vm_580")
    before = debian_rootfs.listing()
    result = play(ansible_playbook, chroot_inventory, fm_vars(tree, repo), tags="fabric_manager")
    assert result.returncode == 0, result.output
    assert "0 NVSwitches (none): Fabric Manager not needed" in result.output
    assert result.stats()["rootfs01"]["changed"] == 0
    assert all(r.get("skipped") for r in result.task_results("Install Fabric Manager at 535.261.03"))
    assert debian_rootfs.changed_since(before) == []


def test_fabric_manager_mismatch_is_refused_before_installing(
    ansible_playbook, chroot_inventory, debian_rootfs, host_tree_in_rootfs, local_repo
):
    # The repository only has other 535 builds and the seed's 550: none equals the installed driver.
    repo = local_repo("fm-mismatch", [apt_repo.fabric_manager(NEWER), apt_repo.fabric_manager("550.127.05")])
    tree = host_tree_in_rootfs("hgx_a800_nouveau")
    installed = dpkg_version(debian_rootfs, "nvidia-fabricmanager-535")  # whatever an earlier test left
    result = play(ansible_playbook, chroot_inventory, fm_vars(tree, repo), tags="fabric_manager")
    assert result.returncode != 0
    assert "6 NVSwitches (NVSwitch gen2 (HGX A100/A800))" in result.output
    assert "nvidia-fabricmanager-535 535.261.03 is not in the repository (it has 535.309.01)" in result.output
    assert dpkg_version(debian_rootfs, "nvidia-fabricmanager-535") == installed


def test_fabric_manager_locked_to_the_driver_on_nvswitch(
    ansible_playbook, chroot_inventory, debian_rootfs, host_tree_in_rootfs, local_repo
):
    repo = local_repo("fm-ok", [apt_repo.fabric_manager(DRIVER), apt_repo.fabric_manager(NEWER)])
    host_vars = fm_vars(host_tree_in_rootfs("hgx_a800_nouveau"), repo)
    first = play(ansible_playbook, chroot_inventory, host_vars, tags="fabric_manager")
    assert first.returncode == 0, first.output
    # apt's own choice would be the newest (535.309.01-1); the role installed the driver's exact version.
    assert dpkg_version(debian_rootfs, "nvidia-fabricmanager-535") == DRIVER + "-1"
    assert "nvidia-fabricmanager-535" in debian_rootfs.run("apt-mark", "showhold").stdout.split()
    assert debian_rootfs.run("systemctl", "is-enabled", "nvidia-fabricmanager").stdout.strip() == "enabled"
    second = play(ansible_playbook, chroot_inventory, host_vars, tags="fabric_manager")
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()


def test_container_toolkit_pinned_and_containerd_configured_once(
    ansible_playbook, chroot_inventory, debian_rootfs, local_repo
):
    # Synthetic packages (apt_repo.container_toolkit): the repository also has a newer 1.18.0 that apt
    # would pick without the pin; nvidia-ctk is the stand-in script of apt_repo.py.
    repo = local_repo("toolkit", apt_repo.container_toolkit("1.17.8") + apt_repo.container_toolkit("1.18.0"))
    host_vars = {
        "nvidia_container_toolkit_enabled": True,
        "nvidia_container_toolkit_version": "1.17.8",
        "nvidia_container_toolkit_repo_url": repo,
        "nvidia_container_toolkit_repo_trusted": True,
    }
    before = debian_rootfs.listing()
    check = play(ansible_playbook, chroot_inventory, host_vars, "--check", "--diff", tags="nvidia_container_toolkit")
    assert check.returncode == 0, check.output
    assert debian_rootfs.changed_since(before) == []

    first = play(ansible_playbook, chroot_inventory, host_vars, tags="nvidia_container_toolkit")
    assert first.returncode == 0, first.output
    for package in (
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
        "libnvidia-container-tools",
        "libnvidia-container1",
    ):
        assert dpkg_version(debian_rootfs, package) == "1.17.8-1", package
    config = debian_rootfs.read("/etc/containerd/config.toml")
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]' in config
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in config
    restarts = first.task_results("Restart the container runtime")
    assert restarts and restarts[0].get("skipped"), (
        "notified on change; skipped only because a chroot runs no containerd"
    )

    second = play(ansible_playbook, chroot_inventory, host_vars, tags="nvidia_container_toolkit")
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()
    assert not second.task_results("Restart the container runtime")


def test_doca_ofed_pinned_with_peermem(
    ansible_playbook, chroot_inventory, debian_rootfs, local_repo, host_tree_in_rootfs
):
    # Synthetic OFED packages (apt_repo.ofed), one repository per release as NVIDIA publishes them. A
    # repository of another release is refused first. The GPUDirect choice reads the recorded HGX tree
    # (proprietary 535 module -> nvidia-peermem).
    other = local_repo("ofed-newer", apt_repo.ofed("24.10-1.1.4.0"))
    wrong = play(
        ansible_playbook,
        chroot_inventory,
        {"doca_ofed_enabled": True, "doca_ofed_repo_url": other, "doca_ofed_repo_trusted": True},
        tags="doca_ofed",
    )
    assert wrong.returncode != 0
    assert (
        "doca_ofed: doca-ofed 24.10-0.7.0.0 is not in the configured repositories (they have: 24.10-1.1.4.0)"
        in wrong.output
    )
    assert dpkg_version(debian_rootfs, "doca-ofed") is None
    repo = local_repo("ofed", apt_repo.ofed("24.10-0.7.0.0"))
    host_vars = {
        "doca_ofed_enabled": True,
        "doca_ofed_repo_url": repo,
        "doca_ofed_repo_trusted": True,
        "doca_ofed_facts_root": host_tree_in_rootfs("hgx_a800_stale_535"),
    }
    before = debian_rootfs.listing()
    check = play(ansible_playbook, chroot_inventory, host_vars, "--check", "--diff", tags="doca_ofed")
    assert check.returncode == 0, check.output
    assert debian_rootfs.changed_since(before) == []

    first = play(ansible_playbook, chroot_inventory, host_vars, tags="doca_ofed")
    assert first.returncode == 0, first.output
    assert dpkg_version(debian_rootfs, "doca-ofed") == "24.10-0.7.0.0"
    assert debian_rootfs.run("ofed_info", "-s").stdout.strip() == "MLNX_OFED_LINUX-24.10-0.7.0.0:"
    assert "doca-ofed" in debian_rootfs.run("apt-mark", "showhold").stdout.split()
    assert "nvidia-peermem" in debian_rootfs.read("/etc/modules-load.d/llmops-nvidia-peermem.conf")
    assert "peermem (proprietary NVIDIA kernel module" in first.output
    assert first.task_results("Restart openibd"), "package change notifies the openibd restart"

    second = play(ansible_playbook, chroot_inventory, host_vars, tags="doca_ofed")
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()


def test_ascend_driver_and_firmware_only_when_they_differ(ansible_playbook, chroot_inventory, debian_rootfs):
    # Stand-in .run installers (ascend_run.py). Huawei does not list Debian, so the test widens
    # ascend_driver_supported_os to the rootfs's Debian 12; the refusal of the default list is checked first.
    import ascend_run

    folder = debian_rootfs.file("/srv/ascend")
    driver = ascend_run.write_run(folder, "driver", "24.1.0")
    firmware = ascend_run.write_run(folder, "firmware", "7.5.0.3.220")
    newer_fw = ascend_run.write_run(folder, "firmware", "7.5.0.5.220")
    base = {
        "ascend_driver_enabled": True,
        "ascend_driver_driver_run": "/srv/ascend/" + driver,
        "ascend_driver_firmware_run": "/srv/ascend/" + firmware,
    }
    widened = dict(base, ascend_driver_supported_os=[{"name": "Debian", "versions": ["12"]}])

    def run(host_vars, *args):
        return ansible_playbook(
            PLAYBOOK,
            "-i",
            chroot_inventory(host_vars, group="npu_nodes"),
            "--tags",
            "ascend_driver",
            *args,
            json_output=True,
        )

    before = debian_rootfs.listing()
    refused = run(base)
    assert refused.returncode != 0 and "ascend_driver: Debian 12" in refused.output
    check = run(widened, "--check", "--diff")
    assert check.returncode == 0, check.output
    assert "driver full 24.1.0, firmware full 7.5.0.3.220" in check.output
    assert debian_rootfs.changed_since(before) == []

    first = run(widened)
    assert first.returncode == 0, first.output
    assert debian_rootfs.read("/usr/local/Ascend/driver/version.info").startswith("Version=24.1.0\n")
    assert debian_rootfs.read("/usr/local/Ascend/firmware/version.info").startswith("Version=7.5.0.3.220\n")
    assert debian_rootfs.read("/usr/local/Ascend/driver/install.log") == "full 24.1.0 all=1\n"
    assert debian_rootfs.run("id", "-gn", "HwHiAiUser").stdout.strip() == "HwHiAiUser"
    assert "no reboot: no running kernel of its own (chroot/image) after driver none -> 24.1.0" in first.output

    second = run(widened)
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()

    upgrade = run(
        dict(
            widened, ascend_driver_firmware_run="/srv/ascend/" + newer_fw, ascend_driver_firmware_version="7.5.0.5.220"
        )
    )
    assert upgrade.returncode == 0, upgrade.output
    assert debian_rootfs.read("/usr/local/Ascend/firmware/install.log").splitlines()[-1] == "upgrade 7.5.0.5.220 all=0"
    assert debian_rootfs.read("/usr/local/Ascend/driver/install.log") == "full 24.1.0 all=1\n", "driver untouched"
