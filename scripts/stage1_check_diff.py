"""Show what stage 1 (playbooks/prepare_nodes.yml) would install on an inventory's GPU hosts, changing nothing.

`make demo-render` calls this after rendering the manifests. The inventory's real hosts are not contacted:
each gpu_nodes host that enables a bare-metal install role (nvidia_driver, fabric_manager,
nvidia_container_toolkit, doca_ofed) is pointed, through the community.general.chroot connection, at a fresh
copy of the Debian 12 root filesystem the bare-metal tests use (tests/integration/bare_metal/rootfs.py, cached
under ~/.cache/llmops-inference), and the install plays run there with --check --diff. Hardware facts
(NVSwitches on the PCI bus, nouveau loaded, no NVIDIA module yet) come from the HGX A800 tree of
tests/unit/fixtures/bare_metal, the hardware of the 2 x 8 A800 example before its first driver. The output
goes to stdout and <render dir>/prepare_nodes/check-diff.txt.

Needs root (chroot, mount) and debootstrap or the cached rootfs; without them it says so and exits 0, so
`make demo-render` still renders the manifests on a workstation.

    .venv/bin/python scripts/stage1_check_diff.py INVENTORY RENDER_DIR
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "bare_metal"))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "fixtures", "bare_metal"))

import rootfs  # noqa: E402  (the tests' rootfs builder, one cache for both)
import trees  # noqa: E402

INSTALL_ROLES = ("nvidia_driver", "fabric_manager", "nvidia_container_toolkit", "doca_ofed")
HOST_TREE = "hgx_a800_nouveau"
BIN = os.path.join(ROOT, ".venv", "bin")


def _truthy(value):
    return str(value).strip().lower() in ("true", "yes", "1", "on")


def stage1_hosts(inventory):
    """gpu_nodes hosts that enable at least one install role -> the roles they enable."""
    listed = subprocess.run(
        [os.path.join(BIN, "ansible-inventory"), "-i", inventory, "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listed.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def hosts_of(group):
        entry = data.get(group, {})
        found = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            found += hosts_of(child)
        return found

    wanted = {}
    for host in hosts_of("gpu_nodes"):
        roles = [role for role in INSTALL_ROLES if _truthy(hostvars.get(host, {}).get(role + "_enabled", False))]
        if roles:
            wanted[host] = roles
    return wanted


def missing_prerequisites():
    missing = []
    if os.geteuid() != 0:
        missing.append("root (chroot and mount)")
    if not shutil.which("debootstrap") and not os.path.exists(rootfs.tarball_path()):
        missing.append("debootstrap or the cached rootfs " + rootfs.tarball_path())
    return missing


def main(inventory, render_dir):
    hosts = stage1_hosts(inventory)
    if not hosts:
        print("stage 1: no gpu_nodes host of %s enables an install role; nothing to show" % inventory)
        return 0
    missing = missing_prerequisites()
    if missing:
        print("stage 1 check-diff skipped: it needs %s" % ", ".join(missing))
        return 0
    tarball = rootfs.build_tarball()
    work = tempfile.mkdtemp(prefix="llmops-stage1-")
    path = os.path.join(work, "root")
    os.makedirs(path)
    subprocess.run(["tar", "-C", path, "-xf", tarball], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", os.path.join(path, "proc")], check=True)
    try:
        facts_root = "/srv/llmops-hosts/" + HOST_TREE
        trees.materialize(HOST_TREE, os.path.join(path, facts_root.lstrip("/")))
        overlay = {
            "ansible_connection": "community.general.chroot",
            "ansible_host": path,
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_remote_tmp": "/tmp/.ansible-remote",
            "llmops_become": False,
            "fabric_manager_facts_root": facts_root,
            "doca_ofed_facts_root": facts_root,
            # A chroot runs the machine's kernel, whose headers no distribution has: DKMS alone, as in an
            # image build (the real hosts get linux-headers-<their kernel>).
            "nvidia_driver_kernel_headers_package": "",
        }
        overlay_file = os.path.join(work, "stage1-overlay.json")
        with open(overlay_file, "w") as handle:
            json.dump(overlay, handle)
        print(
            "stage 1 --check --diff for %s on a Debian 12 rootfs (%s), hardware facts of the %s tree, "
            "no kernel headers (the chroot has no kernel of its own):"
            % (", ".join("%s (%s)" % (host, ", ".join(roles)) for host, roles in hosts.items()), path, HOST_TREE)
        )
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
        )
        argv = [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            inventory,
            "playbooks/prepare_nodes.yml",
            "--check",
            "--diff",
            "--limit",
            ",".join(hosts),
            "--tags",
            ",".join(INSTALL_ROLES),
            # The hosts share one rootfs: one at a time (apt's simulation takes its lock).
            "--forks",
            "1",
            "-e",
            "@" + overlay_file,
        ]
        out_dir = os.path.join(render_dir, "prepare_nodes")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "check-diff.txt"), "w") as log:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for line in process.stdout:
                sys.stdout.write(line)
                log.write(line)
            returncode = process.wait()
        print(
            "stage 1 check-diff written to %s (ansible-playbook rc=%d)"
            % (os.path.join(out_dir, "check-diff.txt"), returncode)
        )
        return returncode
    finally:
        subprocess.run(["umount", "-l", os.path.join(path, "proc")], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], os.path.abspath(sys.argv[2])))
