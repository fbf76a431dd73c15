"""doca_ofed's ISO and inbox sources through playbooks/prepare_nodes.yml, each on a Debian 12 rootfs of its own.

Real: ansible-playbook over community.general.chroot, Debian's apt/dpkg, ansible.posix.mount mounting an
ISO 9660 image made by Debian's xorriso and recorded in /etc/fstab, and for the inbox source Debian bookworm's
own rdma-core, ibverbs-providers, ibverbs-utils and infiniband-diags from deb.debian.org.
Not the kernel's iso9660 driver: the kernel here (as on the CI runners) is built without it, so the test
mounts the image through Debian's fuseiso (a real ISO 9660 reader over FUSE; doca_ofed_iso_fstype
fuse.fuseiso, options ro) where a host uses the role's default, iso9660 with loop,ro. The host's /dev is
bind-mounted into the chroot (/dev/fuse, as a host has devtmpfs).
Synthetic (NVIDIA's MLNX_OFED ISO cannot be downloaded here): the ISO's packages (apt_repo.ofed, with the
real names mlnx-ofed-all / mlnx-ofed-kernel-utils / rdma-core and the seed's 24.10-0.7.0.0) and its
mlnxofedinstall script; the layout is MLNX_OFED's (apt_repo.build_ofed_iso).
The GPUDirect choice reads the recorded HGX A800 tree (tests/unit/fixtures/bare_metal).
"""

import subprocess

import apt_repo

PLAYBOOK = "playbooks/prepare_nodes.yml"
OFED = "24.10-0.7.0.0"
ISO = "/srv/iso/MLNX_OFED_LINUX-%s-debian12-x86_64.iso" % OFED
INBOX = ("rdma-core", "ibverbs-providers", "ibverbs-utils", "infiniband-diags")


def dpkg_version(root, package):
    result = root.run("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package)
    status, _space, version = result.stdout.partition(" ")
    return version if result.returncode == 0 and status == "installed" else None


def play(ansible_playbook, chroot_inventory, root, host_vars, *args):
    inventory = chroot_inventory(host_vars, root=root)
    return ansible_playbook(PLAYBOOK, "-i", inventory, "--tags", "doca_ofed", *args, json_output=True)


def test_doca_ofed_from_an_iso(ansible_playbook, chroot_inventory, fresh_rootfs, host_tree_in_rootfs):
    root = fresh_rootfs
    # Test setup, before the "before" listing: xorriso to make the image, fuseiso to mount it, the host's /dev.
    install = root.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "xorriso", "fuseiso")
    assert install.returncode == 0, install.stderr
    subprocess.run(["mkdir", "-p", root.file("/srv/iso")], check=True)
    apt_repo.build_ofed_iso(root, ISO, OFED, apt_repo.ofed(OFED, meta="mlnx-ofed-all"))
    subprocess.run(["mount", "--bind", "/dev", root.file("/dev")], check=True)
    host_vars = {
        "doca_ofed_enabled": True,
        "doca_ofed_source": "iso",
        "doca_ofed_iso_path": ISO,
        "doca_ofed_iso_fstype": "fuse.fuseiso",
        "doca_ofed_iso_mount_opts": "ro",
        "doca_ofed_packages": ["mlnx-ofed-all"],
        "doca_ofed_facts_root": host_tree_in_rootfs("hgx_a800_stale_535", root=root),
    }
    before = root.listing()
    check = play(ansible_playbook, chroot_inventory, root, host_vars, "--check", "--diff")
    assert check.returncode == 0, check.output
    assert root.changed_since(before) == []
    assert not root.run("findmnt", "/mnt/llmops-doca-ofed").stdout, "check mode mounts nothing"

    first = play(ansible_playbook, chroot_inventory, root, host_vars)
    assert first.returncode == 0, first.output
    assert "%s /mnt/llmops-doca-ofed fuse.fuseiso ro 0 0" % ISO in root.read("/etc/fstab")
    assert "deb [trusted=yes] file:/mnt/llmops-doca-ofed/DEBS /" in root.read(
        "/etc/apt/sources.list.d/llmops-doca-ofed.list"
    )
    assert dpkg_version(root, "mlnx-ofed-all") == OFED
    assert dpkg_version(root, "rdma-core").startswith("2410mlnx54"), "the ISO's rdma-core, not Debian's"
    assert root.run("ofed_info", "-s").stdout.strip() == "MLNX_OFED_LINUX-%s:" % OFED
    assert "mlnx-ofed-all" in root.run("apt-mark", "showhold").stdout.split()
    assert "nvidia-peermem" in root.read("/etc/modules-load.d/llmops-nvidia-peermem.conf")

    second = play(ansible_playbook, chroot_inventory, root, host_vars)
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()


def test_doca_ofed_inbox_rdma_core(ansible_playbook, chroot_inventory, fresh_rootfs, host_tree_in_rootfs):
    root = fresh_rootfs
    host_vars = {
        "doca_ofed_enabled": True,
        "doca_ofed_source": "inbox",
        "doca_ofed_facts_root": host_tree_in_rootfs("hgx_a800_stale_535", root=root),
    }
    before = root.listing()
    check = play(ansible_playbook, chroot_inventory, root, host_vars, "--check", "--diff")
    assert check.returncode == 0, check.output
    assert root.changed_since(before) == []
    assert dpkg_version(root, "rdma-core") is None

    first = play(ansible_playbook, chroot_inventory, root, host_vars)
    assert first.returncode == 0, first.output
    candidate = root.run("apt-cache", "policy", "rdma-core").stdout
    for package in INBOX:
        version = dpkg_version(root, package)
        assert version, package
    # Debian's own rdma-core (bookworm: 44.0-2), the version apt's policy names as the candidate.
    assert "Candidate: %s" % dpkg_version(root, "rdma-core") in candidate
    # ibverbs-utils' real binary runs; without an HCA (no /sys/class/infiniband) it finds no device list.
    assert "Failed to get IB devices list" in root.run("ibv_devices").stderr
    assert not root.run("apt-mark", "showhold").stdout.strip(), "the inbox source pins nothing"
    assert "nvidia-peermem" in root.read("/etc/modules-load.d/llmops-nvidia-peermem.conf")

    second = play(ansible_playbook, chroot_inventory, root, host_vars)
    assert second.returncode == 0 and second.stats()["rootfs01"]["changed"] == 0, second.changed_tasks()
