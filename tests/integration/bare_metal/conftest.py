"""Fixtures of the bare-metal role tests: a real Debian rootfs driven through community.general.chroot.

- ``debian_rootfs`` (session): a fresh copy of the cached debootstrap tarball (rootfs.py), with /proc
  mounted and the shared apt archive cache bind-mounted so .debs are downloaded once across sessions.
- ``local_repo``: builds a local apt repository of synthetic NVIDIA packages (apt_repo.py) inside the
  rootfs, where a ``file:`` apt source reaches it.
- ``chroot_inventory``: an inventory whose gpu_nodes host is that rootfs (ansible_connection chroot).

Needs root (chroot, mount), debootstrap and, on a cold cache, deb.debian.org. Without them the tests
skip on a workstation and FAIL in CI (CI=true), so CI cannot pass by skipping them.
"""

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess

import apt_repo
import pytest
import rootfs
import yaml

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "unit", "fixtures", "bare_metal")
_spec = importlib.util.spec_from_file_location("bare_metal_trees", os.path.join(FIXTURES, "trees.py"))
_trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_trees)
# Excluded from the before/after listing: the API filesystems, /tmp (Ansible's remote_tmp is put there),
# apt's regenerable binary caches and downloaded archives, and /var/log (apt writes its planner log,
# eipp.log.xz, even for a --simulate run). Everything else counts: dpkg state, /etc, /usr, /var/lib.
LISTING_EXCLUDES = (
    "proc",
    "sys",
    "dev",
    "tmp",
    "var/log",
    "var/cache/apt/archives",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
)


def _missing_prerequisites():
    missing = []
    if os.geteuid() != 0:
        missing.append("root (chroot and mount)")
    if not shutil.which("debootstrap") and not os.path.exists(rootfs.tarball_path()):
        missing.append("debootstrap (apt-get install debootstrap)")
    for tool in ("dpkg-deb", "dpkg-scanpackages"):
        if not shutil.which(tool):
            missing.append("%s (apt-get install dpkg-dev)" % tool)
    return missing


def _skip_or_fail(message):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("bare-metal rootfs tests cannot run in CI: " + message)
    pytest.skip(message)


class Rootfs:
    def __init__(self, path):
        self.path = str(path)

    def file(self, relative):
        return os.path.join(self.path, relative.lstrip("/"))

    def read(self, relative):
        with open(self.file(relative)) as handle:
            return handle.read()

    def run(self, *argv):
        return subprocess.run(["chroot", self.path] + list(argv), capture_output=True, text=True, check=False)

    def listing(self):
        """Stat of every file (mode, owner, size, mtime, link target) plus sha256 of /etc and dpkg state."""
        entries = {}
        for top, dirs, files in os.walk(self.path):
            rel_top = os.path.relpath(top, self.path)
            dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_top, d)) not in LISTING_EXCLUDES]
            for name in dirs + files:
                rel = os.path.normpath(os.path.join(rel_top, name))
                if rel in LISTING_EXCLUDES:
                    continue
                full = os.path.join(top, name)
                st = os.lstat(full)
                entry = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
                if stat.S_ISLNK(st.st_mode):
                    entry += (os.readlink(full),)
                elif stat.S_ISREG(st.st_mode) and rel.startswith(("etc/", "var/lib/dpkg/")):
                    with open(full, "rb") as handle:
                        entry += (hashlib.sha256(handle.read()).hexdigest(),)
                entries[rel] = entry
        return entries


def _mount(*argv):
    subprocess.run(["mount"] + list(argv), check=True)


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory):
    missing = _missing_prerequisites()
    if missing:
        _skip_or_fail("missing " + ", ".join(missing))
    try:
        tarball = rootfs.build_tarball()
    except subprocess.CalledProcessError as exc:
        _skip_or_fail("debootstrap failed (no network to deb.debian.org?): %s" % exc)
    path = tmp_path_factory.mktemp("rootfs") / "root"
    path.mkdir()
    subprocess.run(["tar", "-C", str(path), "-xf", tarball], check=True)
    # The tarball's no-Recommends apt.conf would hide a role that forgets install_recommends: drop it.
    os.unlink(path / "etc/apt/apt.conf.d/90llmops-test")
    # dpkg without fsync: a throwaway rootfs needs no crash safety, and the driver installs twice as fast.
    (path / "etc/dpkg/dpkg.cfg.d/llmops-test-unsafe-io").write_text("force-unsafe-io\n")
    mounts = []
    try:
        _mount("-t", "proc", "proc", str(path / "proc"))
        mounts.append(path / "proc")
        _mount("--bind", rootfs.apt_archives(), str(path / "var/cache/apt/archives"))
        mounts.append(path / "var/cache/apt/archives")
        subprocess.run(["chroot", str(path), "apt-get", "update", "-qq"], check=True)
        yield Rootfs(path)
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="session")
def local_repo(debian_rootfs):
    """build(name, packages) -> the file: URI (inside the rootfs) of a new synthetic repository."""

    def build(name, packages):
        target = debian_rootfs.file("/srv/llmops-repos/" + name)
        shutil.rmtree(target, ignore_errors=True)
        apt_repo.build_repo(target, packages)
        return "file:/srv/llmops-repos/" + name

    return build


@pytest.fixture
def chroot_inventory(debian_rootfs, tmp_path):
    """inventory(host_vars) -> path of an inventory with the rootfs as the only gpu_nodes host."""

    def write(host_vars=None, group="gpu_nodes"):
        host = {
            "ansible_connection": "community.general.chroot",
            "ansible_host": debian_rootfs.path,
            "ansible_python_interpreter": "/usr/bin/python3",
            "llmops_become": False,
            # Ansible's module temp folder in /tmp, so a check-mode run leaves no trace under /root.
            "ansible_remote_tmp": "/tmp/.ansible-remote",
        }
        host.update(host_vars or {})
        groups = {"gpu_nodes": {"hosts": {}}, "npu_nodes": {"hosts": {}}, "k8s_control": {"hosts": {}}}
        groups[group] = {"hosts": {"rootfs01": host}}
        path = tmp_path / "inventory.yml"
        path.write_text(yaml.safe_dump({"all": {"children": groups}}))
        return str(path)

    return write


@pytest.fixture(scope="session")
def host_tree_in_rootfs(debian_rootfs):
    """Copy a recorded host tree (fixtures/bare_metal) into the rootfs; returns its path there."""

    def copy(name):
        inside = "/srv/llmops-hosts/" + name
        shutil.rmtree(debian_rootfs.file(inside), ignore_errors=True)
        _trees.materialize(name, debian_rootfs.file(inside))
        return inside

    return copy
