"""Shared fixtures for integration tests.

- ``ansible_playbook``: runs the real ansible-playbook with this tree as llmops.inference.
- ``api_client``/``core``/``namespace``: the Kubernetes test bed (scripts/testbed/cluster-up.sh,
  docs/testing.md); they skip, with a message, when the test bed is not up (`make cluster-up`).
"""

import json
import os
import subprocess
import sys
import uuid

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from testbed_support import KUBECONFIG, exists, wait_for

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

    def task_results(self, name):
        """Results (per host, per loop item) of the tasks whose name ends with ``name`` (json callback runs)."""
        found = []
        for play in json.loads(self.stdout)["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"].endswith(name):
                    for result in task["hosts"].values():
                        found.extend(result.get("results") or [result])
        return found

    def changed_tasks(self):
        """Names of the tasks that reported changed (json callback runs only), for failure messages."""
        names = []
        for play in json.loads(self.stdout)["plays"]:
            for task in play["tasks"]:
                if any(result.get("changed") for result in task["hosts"].values()):
                    names.append(task["task"]["name"])
        return names


# Tests that change or wait on the shared test bed (its real nodes' few simulated GPUs, the kwok GPU nodes, cluster-wide
# add-ons) are marked `testbed`: scripts/test.sh runs them one after another in one pytest while a second pytest runs
# everything else (`-m "not testbed"`: unit tests, renders, the engine stand-in outside Kubernetes) beside it.
BED_MARKS = ("testbed_support", "KUBECONFIG")
_bed_modules = {}


def _uses_the_bed(path):
    path = str(path)
    if path not in _bed_modules:
        with open(path) as handle:
            text = handle.read()
        _bed_modules[path] = os.sep + "addons" + os.sep in path or any(mark in text for mark in BED_MARKS)
    return _bed_modules[path]


def pytest_configure(config):
    config.addinivalue_line("markers", "testbed: uses the shared test bed (set by tests/integration/conftest.py)")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    bare_metal = os.path.join(here, "bare_metal") + os.sep
    for item in items:
        path = str(item.path)
        if path.startswith(here) and not path.startswith(bare_metal) and _uses_the_bed(path):
            item.add_marker(pytest.mark.testbed)


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="module")
def api_client():
    if not os.path.exists(KUBECONFIG):
        pytest.skip(f"test bed not up: {KUBECONFIG} missing (run `make cluster-up`)")
    api = config.new_client_from_config(config_file=KUBECONFIG)
    try:
        client.VersionApi(api).get_code(_request_timeout=5)
    except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
        pytest.skip(f"test bed not reachable through {KUBECONFIG}: {exc} (run `make cluster-up`)")
    return api


@pytest.fixture(scope="module")
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def namespace(core):
    name = f"testbed-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # the namespace controller creates the default ServiceAccount pods need
    wait_for(lambda: exists(core.read_namespaced_service_account, "default", name), what="default ServiceAccount")
    yield name
    core.delete_namespace(name)
