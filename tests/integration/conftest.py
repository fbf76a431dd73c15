"""Shared helpers for integration tests: run the real ansible-playbook against this collection."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "llmops", "inference")
BIN = os.path.dirname(sys.executable)


class PlaybookRun:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def output(self):
        return self.stdout + self.stderr

    def stats(self):
        """Per-host stats from the json callback (ANSIBLE_STDOUT_CALLBACK=json runs only)."""
        return json.loads(self.stdout)["stats"]


@pytest.fixture
def ansible_playbook():
    """Run ansible-playbook from the venv with this tree as llmops.inference; returns PlaybookRun."""
    if not os.path.exists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(ROOT, LINK)

    def run(playbook, *args, extra_env=None, json_output=False):
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
            ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
        )
        if json_output:
            env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
        env.update(extra_env or {})
        completed = subprocess.run(
            [os.path.join(BIN, "ansible-playbook"), playbook] + list(args),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return PlaybookRun(completed)

    return run
