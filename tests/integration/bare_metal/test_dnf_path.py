"""nvidia_driver and fabric_manager on their RHEL/Rocky 9 path, with the real dnf.

Real: ansible-playbook through community.general.chroot; Debian's dnf 4.14, python3-dnf (what
ansible.builtin.dnf drives), dnf-plugins-core's versionlock (what community.general.dnf_versionlock drives),
librpm, rpmbuild, createrepo_c and dracut, in a rootfs that Ansible's facts and dnf take for Rocky Linux 9
(rootfs.build_rocky_tarball says what makes it look so; its userland underneath is Debian's).
Synthetic (NVIDIA's CUDA repository is unreachable here): the RPMs, built in the test by rpmbuild with the
real names, Epoch 3, versions and inter-package Requires of NVIDIA's rhel9 driver packages (rpm_repo.py
cites the spec files they come from) and served by createrepo_c repositories, one standing in for the CUDA
repository (550.127.05, the seed's pin, and 550.144.03, a later R550 release dnf would otherwise pick) and one
for the Rocky/EPEL packages they require (empty stand-ins). Not covered: the CUDA repository's modularity
metadata (nvidia-driver module streams), which a createrepo_c repository without modules.yaml does not have.
Hardware facts for Fabric Manager come from the recorded HGX A800 tree (tests/unit/fixtures/bare_metal).

Every test stands alone: the module fixture ``rocky_driver`` runs check mode on the fresh rootfs, then the
install and its re-run, once, whichever test asks first; each test asserts on what it needs.
"""

import types

import pytest
import rpm_repo

PLAYBOOK = "playbooks/prepare_nodes.yml"
DRIVER = "550.127.05"  # seed 002's pin
NEWER = "550.144.03"  # a later R550 release in the same repository
CUDA_REPO = "/srv/llmops-repos/cuda-rhel9"
BASE_REPO = "/srv/llmops-repos/el9-stand-ins"
PINNED = ("nvidia-driver", "nvidia-driver-cuda", "kmod-nvidia-latest-dkms")


def driver_vars(**extra):
    values = {
        "nvidia_driver_enabled": True,
        "nvidia_driver_version": DRIVER,
        "nvidia_driver_source": "local_repo",
        "nvidia_driver_repo_url": "file://" + CUDA_REPO,
        "nvidia_driver_repo_trusted": True,
        # A chroot has no kernel of its own to build against: DKMS gets the source, headers come with the
        # image's kernel.
        "nvidia_driver_kernel_headers_package": "",
    }
    values.update(extra)
    return values


def rpm_version(root, package):
    """epoch:version-release of an installed package, None when it is not installed."""
    result = root.run("rpm", "-q", "--qf", "%{EPOCHNUM}:%{VERSION}-%{RELEASE}", package)
    return result.stdout if result.returncode == 0 else None


def play(ansible_playbook, chroot_inventory, root, host_vars, *args, tags="nvidia_driver"):
    inventory = chroot_inventory(host_vars, root=root)
    return ansible_playbook(PLAYBOOK, "-i", inventory, "--tags", tags, *args, json_output=True)


def add_repos(root):
    rpm_repo.build_repo(root, CUDA_REPO, rpm_repo.cuda_repo([DRIVER, NEWER], [DRIVER, NEWER]))
    rpm_repo.build_repo(root, BASE_REPO, rpm_repo.distro_stand_ins())
    # The host's own repositories (BaseOS/AppStream/EPEL on a Rocky host): configured before the role runs.
    with open(root.file("/etc/yum.repos.d/el9-stand-ins.repo"), "w") as handle:
        handle.write("[el9-stand-ins]\nname=Rocky 9 and EPEL stand-ins\nbaseurl=file://%s\ngpgcheck=0\n" % BASE_REPO)
    return root


@pytest.fixture(scope="module")
def rocky_repos(rocky_rootfs):
    return add_repos(rocky_rootfs)


@pytest.fixture(scope="module")
def rocky_driver(ansible_playbook, chroot_inventory, rocky_repos):
    """Check mode on the fresh rootfs, then the install and a re-run; what each saw."""
    root = rocky_repos
    state = types.SimpleNamespace()
    before = root.listing()
    state.check = play(ansible_playbook, chroot_inventory, root, driver_vars(), "--check", "--diff")
    state.check_changed_files = root.changed_since(before)
    state.check_installed = rpm_version(root, "nvidia-driver")
    state.first = play(ansible_playbook, chroot_inventory, root, driver_vars())
    state.second = play(ansible_playbook, chroot_inventory, root, driver_vars())
    return state


def test_dnf_check_mode_on_a_fresh_host_changes_nothing(rocky_driver):
    assert rocky_driver.check.returncode == 0, rocky_driver.check.output
    assert rocky_driver.check_changed_files == []
    assert rocky_driver.check_installed is None
    assert "would install nvidia-driver, nvidia-driver-cuda, kmod-nvidia-latest-dkms at 550.127.05" in (
        rocky_driver.check.output
    )


def test_dnf_driver_installs_locked_and_reruns_unchanged(rocky_driver, rocky_rootfs):
    root = rocky_rootfs
    assert rocky_driver.first.returncode == 0, rocky_driver.first.output
    # The pin, not dnf's newest (550.144.03 is in the same repository); Epoch 3 as NVIDIA's packages have.
    for package in PINNED + (
        "nvidia-driver-libs",
        "nvidia-driver-cuda-libs",
        "nvidia-kmod-common",
        "nvidia-persistenced",
    ):
        assert rpm_version(root, package) == "3:%s-1.el9" % DRIVER, package
    locks = root.read("/etc/dnf/plugins/versionlock.list")
    # The named packages and their exact-version dependencies (else `dnf upgrade` fails with best=True).
    for package in PINNED + (
        "nvidia-driver-libs",
        "nvidia-driver-cuda-libs",
        "nvidia-kmod-common",
        "nvidia-persistenced",
    ):
        assert "%s-3:%s-1.el9.*" % (package, DRIVER) in locks, locks
    # The lock holds against the real dnf: an upgrade with the newer build available moves nothing.
    upgrade = root.run("dnf", "-y", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert rpm_version(root, "nvidia-driver") == "3:%s-1.el9" % DRIVER
    assert "blacklist nouveau" in root.read("/etc/modprobe.d/llmops-blacklist-nouveau.conf")
    assert root.run("systemctl", "is-enabled", "nvidia-persistenced").stdout.strip() == "enabled"
    assert rocky_driver.first.task_results("Rebuild the initramfs"), "dracut runs once, the blacklist changed"
    assert rocky_driver.second.returncode == 0, rocky_driver.second.output
    assert rocky_driver.second.stats()["rootfs01"]["changed"] == 0, rocky_driver.second.changed_tasks()


def test_dnf_check_mode_on_the_installed_host_changes_nothing(
    rocky_driver, ansible_playbook, chroot_inventory, rocky_rootfs
):
    before = rocky_rootfs.listing()
    result = play(ansible_playbook, chroot_inventory, rocky_rootfs, driver_vars(), "--check", "--diff")
    assert result.returncode == 0, result.output
    assert result.stats()["rootfs01"]["changed"] == 0, result.changed_tasks()
    assert rocky_rootfs.changed_since(before) == []


def test_dnf_moved_pin_is_refused_before_anything_changes(
    rocky_driver, ansible_playbook, chroot_inventory, rocky_rootfs
):
    before = rocky_rootfs.listing()
    result = play(ansible_playbook, chroot_inventory, rocky_rootfs, driver_vars(nvidia_driver_version=NEWER))
    assert result.returncode != 0
    assert "driver 550.127.05 installed and the pin says 550.144.03: refusing" in result.output
    assert rpm_version(rocky_rootfs, "nvidia-driver") == "3:%s-1.el9" % DRIVER
    assert rocky_rootfs.changed_since(before) == []


def test_dnf_pin_the_repository_lacks_is_refused(rocky_driver, ansible_playbook, chroot_inventory, rocky_rootfs):
    root = rocky_rootfs
    before = root.listing()
    result = play(
        ansible_playbook,
        chroot_inventory,
        root,
        driver_vars(nvidia_driver_version="550.999.01", nvidia_driver_allow_version_change=True),
    )
    assert result.returncode != 0
    assert "nvidia_driver: nvidia-driver 550.999.01 is not in the configured repositories" in result.output
    assert root.changed_since(before) == []


def test_dnf_fabric_manager_locked_to_the_driver(
    rocky_driver, ansible_playbook, chroot_inventory, host_tree_in_rootfs, rocky_rootfs
):
    # After the driver (its repository holds Fabric Manager too, as NVIDIA's CUDA repository does).
    root = rocky_rootfs
    host_vars = {
        "fabric_manager_enabled": True,
        "nvidia_driver_version": DRIVER,
        "fabric_manager_facts_root": host_tree_in_rootfs("hgx_a800_nouveau", root=root),
    }
    first = play(ansible_playbook, chroot_inventory, root, host_vars, tags="fabric_manager")
    assert first.returncode == 0, first.output
    assert rpm_version(root, "nvidia-fabric-manager") == "0:%s-1" % DRIVER
    assert "nvidia-fabric-manager-0:%s-1.*" % DRIVER in root.read("/etc/dnf/plugins/versionlock.list")
    assert root.run("systemctl", "is-enabled", "nvidia-fabricmanager").stdout.strip() == "enabled"
    second = play(ansible_playbook, chroot_inventory, root, host_vars, tags="fabric_manager")
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()


def test_dnf_allowed_version_change_moves_driver_and_locks(ansible_playbook, chroot_inventory, fresh_rocky_rootfs):
    # A rootfs of its own: the driver moves here. The old version's locks must go (they would keep allowing
    # it), the new version's packages and exact-version dependencies are locked, and dnf upgrade still works.
    root = add_repos(fresh_rocky_rootfs)
    first = play(ansible_playbook, chroot_inventory, root, driver_vars())
    assert first.returncode == 0, first.output
    moved_vars = driver_vars(nvidia_driver_version=NEWER, nvidia_driver_allow_version_change=True)
    moved = play(ansible_playbook, chroot_inventory, root, moved_vars)
    assert moved.returncode == 0, moved.output
    for package in PINNED + ("nvidia-driver-libs", "nvidia-persistenced"):
        assert rpm_version(root, package) == "3:%s-1.el9" % NEWER, package
    locks = root.read("/etc/dnf/plugins/versionlock.list")
    assert DRIVER not in locks, locks
    assert "nvidia-driver-libs-3:%s-1.el9.*" % NEWER in locks, locks
    upgrade = root.run("dnf", "-y", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    again = play(ansible_playbook, chroot_inventory, root, moved_vars)
    assert again.returncode == 0 and again.stats()["rootfs01"]["changed"] == 0, again.changed_tasks()
