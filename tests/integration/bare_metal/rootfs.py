"""A real Debian root filesystem for the bare-metal role tests, made by debootstrap and cached.

Nothing here is synthetic: debootstrap fetches real Debian packages from deb.debian.org and the rootfs is
a normal Debian system (dpkg, apt, systemctl, update-initramfs, dkms all real). Only the kernel is
missing: a chroot shares the host's running kernel, so no module is ever loaded (the reboot decision is
tested from recorded /proc and /sys files instead, tests/unit/fixtures/bare_metal/).

The cold build (debootstrap, ~2-4 min) is done once into ~/.cache/llmops-inference/rootfs/ as a tarball;
every test session unpacks a fresh copy (seconds). Downloaded .deb files are kept in a shared apt cache
folder bind-mounted over /var/cache/apt/archives, so the NVIDIA driver packages are downloaded once.
"""

import hashlib
import os
import shutil
import subprocess
import tarfile

SUITE = os.environ.get("LLMOPS_ROOTFS_SUITE", "bookworm")
MIRROR = os.environ.get("LLMOPS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "llmops-inference", "rootfs")
# python3 + python3-apt: Ansible's apt module; systemd: `systemctl enable` (works offline in a chroot);
# kmod + initramfs-tools: modprobe.d and update-initramfs, as on a real host; gnupg: signed-by keys.
INCLUDE = "python3,python3-apt,systemd,kmod,initramfs-tools,gnupg,ca-certificates,procps"
COMPONENTS = "main,contrib,non-free,non-free-firmware"


def _key():
    return hashlib.sha256(("%s|%s|%s|%s" % (SUITE, MIRROR, INCLUDE, COMPONENTS)).encode()).hexdigest()[:12]


def tarball_path():
    return os.path.join(CACHE, "debian-%s-%s.tar" % (SUITE, _key()))


def apt_archives():
    path = os.path.join(CACHE, "apt-archives-%s" % SUITE)
    os.makedirs(os.path.join(path, "partial"), exist_ok=True)
    return path


def sources_list():
    return "deb {m} {s} {c}\ndeb {m} {s}-updates {c}\ndeb {sec} {s}-security {c}\n".format(
        m=MIRROR, s=SUITE, c=COMPONENTS.replace(",", " "), sec=MIRROR.replace("/debian", "/debian-security")
    )


def build_tarball():
    """debootstrap into a temporary folder, enable contrib/non-free, tar it into the cache (cold path)."""
    target = tarball_path()
    if os.path.exists(target):
        return target
    os.makedirs(CACHE, exist_ok=True)
    work = target + ".build"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--components=" + COMPONENTS,
            "--include=" + INCLUDE,
            "--cache-dir=" + apt_archives(),
            SUITE,
            work,
            MIRROR,
        ],
        check=True,
    )
    with open(os.path.join(work, "etc/apt/sources.list"), "w") as handle:
        handle.write(sources_list())
    # No recommends: a compute node wants the driver, not the X server the Recommends pull in.
    with open(os.path.join(work, "etc/apt/apt.conf.d/90llmops-test"), "w") as handle:
        handle.write('APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n')
    for name in os.listdir(os.path.join(work, "var/cache/apt/archives")):
        if name.endswith(".deb"):
            os.unlink(os.path.join(work, "var/cache/apt/archives", name))
    with tarfile.open(target + ".tmp", "w") as tar:
        tar.add(work, arcname=".")
    os.replace(target + ".tmp", target)
    shutil.rmtree(work)
    return target


if __name__ == "__main__":
    print(build_tarball())
