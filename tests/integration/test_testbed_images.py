"""The test bed's locally built images run under the real containerd and runc (Debian packages).

scripts/testbed/image_build.py builds the Python image from Debian packages; a private containerd
(root, state and socket in a temporary directory) imports it with `ctr images import` and runs it with
runc, with no registry involved. Needs root and containerd/runc/ctr (scripts/testbed/nodes-up.sh
installs them); skips without them. The same image serving through a Service on the real kubelet
nodes is tests/integration/test_testbed_real_nodes.py.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from testbed_support import ROOT

IMAGE = "llmops.invalid/testbed/python:3.11"


@pytest.fixture()
def containerd(tmp_path):
    missing = [tool for tool in ("containerd", "ctr", "runc") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and containerd/ctr/runc (missing: {missing or 'root'})")
    sock = tmp_path / "c.sock"
    (tmp_path / "config.toml").write_text(
        f'version = 2\nroot = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{tmp_path}/opt"\n'
    )
    had_run_dir = os.path.exists("/run/containerd")
    with open(tmp_path / "containerd.log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(tmp_path / "config.toml")], stdout=log, stderr=log)
    ctr = ["ctr", "--address", str(sock), "-n", "k8s.io"]
    deadline = time.monotonic() + 30
    while subprocess.run([*ctr, "version"], capture_output=True, check=False).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "containerd.log").read_text()
        time.sleep(0.2)
    yield ctr
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    with open("/proc/self/mountinfo") as mounts:
        ours = sorted((line.split()[4] for line in mounts if line.split()[4].startswith(str(tmp_path))), reverse=True)
    for mount in ours:
        subprocess.run(["umount", "-l", mount], check=False)
    if not had_run_dir:  # containerd 1.6 makes /run/containerd/{fifo,runc,s} whatever its config says
        subprocess.run(["find", "/run/containerd", "-depth", "-type", "d", "-empty", "-delete"], check=False)


def test_python_image_built_from_debian_packages_runs_under_runc(containerd):
    archive = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "testbed", "image_build.py"), "python"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run([*containerd, "images", "import", archive], check=True, capture_output=True)
    assert (
        IMAGE in subprocess.run([*containerd, "images", "ls", "-q"], capture_output=True, text=True, check=False).stdout
    )
    run = subprocess.run(
        [*containerd, "run", "--rm", IMAGE, "imagetest", "sh", "-c",
         'python3 -c "import http.server, ssl, sqlite3, sys; print(sys.version_info[:2])"; id -u'],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(3,", "11)", "0"]
