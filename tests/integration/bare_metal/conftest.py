"""Fixtures of the bare-metal role tests: a real Debian rootfs driven through community.general.chroot.

- ``debian_rootfs`` (session): a fresh copy of the cached debootstrap tarball (rootfs.py), with /proc
  mounted and the shared apt archive cache bind-mounted so .debs are downloaded once across sessions.
- ``fresh_rootfs``: the same, unpacked for one test only (for tests whose state must not depend on others).
- ``rocky_rootfs`` (session): the Rocky-9-looking rootfs with Debian's real dnf (rootfs.build_rocky_tarball).
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
# eipp.log.xz, even for a --simulate run), and dnf's metadata cache (the dnf counterpart of apt's
# pkgcache.bin: dnf refreshes it when it reads a repository). Everything else counts: dpkg and rpm state,
# /etc, /usr, /var/lib.
LISTING_EXCLUDES = (
    "var/cache/dnf",
    # dnf's transaction log (SQLite): opening it may checkpoint its write-ahead log into it; what dnf
    # changed is in the rpm database and /etc, which count.
    "var/lib/dnf/history.sqlite",
    "var/lib/dnf/history.sqlite-wal",
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

    def changed_since(self, before):
        """Paths whose listing entry differs from ``before`` (an earlier listing): added, removed, changed."""
        after = self.listing()
        return sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))

    def listing(self):
        """Stat of every file (mode, owner, size, mtime, link target) plus sha256 of /etc and the dpkg, rpm
        and dnf state."""
        entries = {}
        for top, dirs, files in os.walk(self.path):
            rel_top = os.path.relpath(top, self.path)
            dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_top, d)) not in LISTING_EXCLUDES]
            for name in dirs + files:
                rel = os.path.normpath(os.path.join(rel_top, name))
                # SQLite's -shm files (rpm's and dnf's databases) are the WAL index, rewritten by every reader
                # and holding no persistent data (sqlite.org/walformat.html).
                if rel in LISTING_EXCLUDES or rel.endswith(".sqlite-shm"):
                    continue
                full = os.path.join(top, name)
                st = os.lstat(full)
                entry = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
                if stat.S_ISLNK(st.st_mode):
                    entry += (os.readlink(full),)
                elif stat.S_ISREG(st.st_mode) and rel.startswith(
                    ("etc/", "var/lib/dpkg/", "var/lib/rpm/", "var/lib/dnf/")
                ):
                    with open(full, "rb") as handle:
                        entry += (hashlib.sha256(handle.read()).hexdigest(),)
                entries[rel] = entry
        return entries


def _mount(*argv):
    subprocess.run(["mount"] + list(argv), check=True)


def _unpack(tarball, parent):
    path = parent / "root"
    path.mkdir()
    subprocess.run(["tar", "-C", str(path), "-xf", tarball], check=True)
    # dpkg without fsync: a throwaway rootfs needs no crash safety, and the driver installs twice as fast.
    (path / "etc/dpkg/dpkg.cfg.d/llmops-test-unsafe-io").write_text("force-unsafe-io\n")
    return path


def _debian_rootfs(parent):
    """Unpack a fresh Debian rootfs under parent, mount /proc and the shared apt archive; yields Rootfs."""
    missing = _missing_prerequisites()
    if missing:
        _skip_or_fail("missing " + ", ".join(missing))
    try:
        tarball = rootfs.build_tarball()
    except subprocess.CalledProcessError as exc:
        _skip_or_fail("debootstrap failed (no network to deb.debian.org?): %s" % exc)
    path = _unpack(tarball, parent)
    # The tarball's no-Recommends apt.conf would hide a role that forgets install_recommends: drop it.
    os.unlink(path / "etc/apt/apt.conf.d/90llmops-test")
    try:
        _mount("-t", "proc", "proc", str(path / "proc"))
        _mount("--bind", rootfs.apt_archives(), str(path / "var/cache/apt/archives"))
        subprocess.run(["chroot", str(path), "apt-get", "update", "-qq"], check=True)
        yield Rootfs(path)
    finally:
        _umount_below(path)


def _umount_below(path):
    """Unmount everything mounted under path (what the fixture and the tests mounted), deepest first."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mounts") as handle:
        points = [line.split()[1].replace("\\040", " ") for line in handle]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory):
    """One rootfs for the session: tests that install something reuse what earlier ones installed."""
    yield from _debian_rootfs(tmp_path_factory.mktemp("rootfs"))


@pytest.fixture
def fresh_rootfs(tmp_path_factory):
    """A rootfs of its own for one test (its before/after state depends on nothing else; ~20 s to unpack)."""
    yield from _debian_rootfs(tmp_path_factory.mktemp("fresh-rootfs"))


@pytest.fixture(scope="session")
def rocky_rootfs(tmp_path_factory):
    """A rootfs Ansible and dnf take for Rocky Linux 9 (rootfs.build_rocky_tarball says what is real)."""
    yield from _rocky_rootfs(tmp_path_factory.mktemp("rocky-rootfs"))


@pytest.fixture
def fresh_rocky_rootfs(tmp_path_factory):
    """The same, unpacked for one test only."""
    yield from _rocky_rootfs(tmp_path_factory.mktemp("fresh-rocky-rootfs"))


def _rocky_rootfs(parent):
    missing = _missing_prerequisites()
    if missing:
        _skip_or_fail("missing " + ", ".join(missing))
    try:
        tarball = rootfs.build_rocky_tarball()
    except subprocess.CalledProcessError as exc:
        _skip_or_fail("building the Rocky-like rootfs failed (no network to deb.debian.org?): %s" % exc)
    path = _unpack(tarball, parent)
    _mount("-t", "proc", "proc", str(path / "proc"))
    try:
        yield Rootfs(path)
    finally:
        _umount_below(path)


@pytest.fixture(scope="session")
def local_repo(debian_rootfs):
    """build(name, packages) -> the file: URI (inside the rootfs) of a new synthetic repository."""

    def build(name, packages):
        target = debian_rootfs.file("/srv/llmops-repos/" + name)
        shutil.rmtree(target, ignore_errors=True)
        apt_repo.build_repo(target, packages)
        return "file:/srv/llmops-repos/" + name

    return build


@pytest.fixture(scope="session")
def chroot_inventory(request, tmp_path_factory):
    """inventory(host_vars, group, root) -> path of an inventory with one rootfs (default: the session's
    Debian one) as the only host of ``group``."""

    def write(host_vars=None, group="gpu_nodes", root=None):
        root = root or request.getfixturevalue("debian_rootfs")
        host = {
            "ansible_connection": "community.general.chroot",
            "ansible_host": root.path,
            "ansible_python_interpreter": "/usr/bin/python3",
            "llmops_become": False,
            # Ansible's module temp folder in /tmp, so a check-mode run leaves no trace under /root.
            "ansible_remote_tmp": "/tmp/.ansible-remote",
        }
        host.update(host_vars or {})
        groups = {"gpu_nodes": {"hosts": {}}, "npu_nodes": {"hosts": {}}, "k8s_control": {"hosts": {}}}
        groups[group] = {"hosts": {"rootfs01": host}}
        path = tmp_path_factory.mktemp("inventory") / "inventory.yml"
        path.write_text(yaml.safe_dump({"all": {"children": groups}}))
        return str(path)

    return write


@pytest.fixture(scope="session")
def host_tree_in_rootfs(request):
    """Copy a recorded host tree (fixtures/bare_metal) into a rootfs (default: the session's Debian one);
    returns its path there."""

    def copy(name, root=None):
        root = root or request.getfixturevalue("debian_rootfs")
        inside = "/srv/llmops-hosts/" + name
        shutil.rmtree(root.file(inside), ignore_errors=True)
        _trees.materialize(name, root.file(inside))
        return inside

    return copy
