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


# --- A root filesystem that Ansible and dnf take for Rocky Linux 9 (nvidia_driver/fabric_manager dnf path) ---
# Real: Debian's dnf 4.14, python3-dnf (what ansible.builtin.dnf imports), dnf-plugins-core (versionlock),
# rpm/librpm, createrepo_c and dracut, installed by apt from deb.debian.org. Made to look like Rocky 9: its
# /etc/os-release and /etc/redhat-release (Ansible's facts then say distribution Rocky, os_family RedHat,
# major version 9, pkg_mgr dnf), Rocky 9's /etc/dnf/dnf.conf, the rpm database at /var/lib/rpm (Debian's rpm
# keeps it under /root), /etc/yum.repos.d, /lib/modules (dracut --regenerate-all needs the folder a kernel
# package makes), dnf's history database (every installed host has one) and a rocky-release RPM providing
# system-release(releasever) = 9, which dnf reads $releasever from. The userland underneath stays Debian's
# (coreutils, systemd, python3).
ROCKY_PACKAGES = "python3-dnf,dnf-plugins-core,rpm,createrepo-c,dracut"
ROCKY_OS_RELEASE = """NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
"""
# Rocky 9's /etc/dnf/dnf.conf (best and skip_if_unavailable differ from Debian's dnf defaults).
ROCKY_DNF_CONF = """[main]
gpgcheck=1
installonly_limit=3
clean_requirements_on_remove=True
best=True
skip_if_unavailable=False
"""
ROCKY_RELEASE_SPEC = """Name: rocky-release
Version: 9.4
Release: 1.7.el9
Summary: stand-in for Rocky Linux's release package (its provides only)
License: BSD
BuildArch: noarch
Provides: system-release = 9.4
Provides: system-release(releasever) = 9
Provides: redhat-release = 9.4
%description
Stand-in for Rocky Linux's rocky-release: dnf reads $releasever from system-release(releasever).
%files
"""


# Bump when build_rocky_tarball changes what it makes (the cached tarball is keyed on it).
ROCKY_LAYOUT = "2: history database, local plugin off"


def rocky_tarball_path():
    recipe = "|".join((_key(), ROCKY_LAYOUT, ROCKY_PACKAGES, ROCKY_OS_RELEASE, ROCKY_DNF_CONF, ROCKY_RELEASE_SPEC))
    key = hashlib.sha256(recipe.encode()).hexdigest()
    return os.path.join(CACHE, "rocky9-like-%s.tar" % key[:12])


def build_rocky_tarball():
    """The Debian tarball plus dnf/rpm, dressed as Rocky 9 (cold path: ~1 min with a warm apt cache)."""
    target = rocky_tarball_path()
    if os.path.exists(target):
        return target
    base = build_tarball()
    work = target + ".build"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    subprocess.run(["tar", "-C", work, "-xf", base], check=True)
    mounts = [os.path.join(work, "proc"), os.path.join(work, "var/cache/apt/archives")]
    subprocess.run(["mount", "-t", "proc", "proc", mounts[0]], check=True)
    try:
        subprocess.run(["mount", "--bind", apt_archives(), mounts[1]], check=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["chroot", work, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["chroot", work, "apt-get", "install", "-y", "-qq"] + ROCKY_PACKAGES.split(","), check=True, env=env
        )
        for name in ("etc/os-release", "etc/redhat-release"):
            if os.path.lexists(os.path.join(work, name)):
                os.unlink(os.path.join(work, name))
        files = {
            "etc/os-release": ROCKY_OS_RELEASE,
            "etc/rocky-release": "Rocky Linux release 9.4 (Blue Onyx)\n",
            "etc/dnf/dnf.conf": ROCKY_DNF_CONF,
            "etc/rpm/macros.llmops-dbpath": "%_dbpath /var/lib/rpm\n",
            "root/rocky-release.spec": ROCKY_RELEASE_SPEC,
        }
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(work, name)), exist_ok=True)
            with open(os.path.join(work, name), "w") as handle:
                handle.write(text)
        os.symlink("rocky-release", os.path.join(work, "etc/redhat-release"))
        for folder in ("etc/yum.repos.d", "lib/modules", "var/lib/rpm"):
            os.makedirs(os.path.join(work, folder), exist_ok=True)
        # Debian's "local" dnf plugin (copies every download into a local repository) is not on Rocky.
        os.unlink(os.path.join(work, "etc/dnf/plugins/local.conf"))
        script = (
            "rpmbuild --quiet -bb --define '_topdir /root/rpmbuild' /root/rocky-release.spec && "
            "rpm --force-debian -i --nodeps /root/rpmbuild/RPMS/noarch/rocky-release-*.rpm && "
            "rm -rf /root/rpmbuild /root/rocky-release.spec && "
            # A Rocky host has dnf's history database from its installation.
            "dnf -q history list >/dev/null"
        )
        subprocess.run(["chroot", work, "sh", "-c", script], check=True)
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount], check=False)
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
