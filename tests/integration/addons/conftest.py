"""Fixtures of the live add-on tests: the stand-in charts served on loopback, and playbook runs in apply mode
against the test bed (docs/testing.md) with the real helm on PATH."""

import json
import os
import socket
import sys
import tempfile
import time

import pytest
from charts import CRDS_DIR, HELM, ChartRepository, package_all
from testbed_support import KUBECONFIG

PLAYBOOK = os.path.join("playbooks", "cluster_addons.yml")


@pytest.fixture(scope="session")
def chart_repo():
    """Every stand-in chart packaged with the real helm and served by http.server on 127.0.0.1 (our stand-ins:
    the upstream chart repositories are unreachable here). Stops when the session ends."""
    if not os.path.exists(HELM):
        pytest.skip(f"{HELM} missing (run `make testbed-build`)")
    if not os.path.isdir(CRDS_DIR):
        pytest.skip(f"upstream CRDs not found at {CRDS_DIR} (set TESTBED_CRDS_DIR)")
    with tempfile.TemporaryDirectory(prefix="llmops-charts-") as directory:
        archives = package_all(directory)
        with ChartRepository(directory) as repository:
            repository.archives = archives
            yield repository


@pytest.fixture(scope="session")
def helm_home():
    """Helm's cache/config/data in a temporary folder, so no user repository list is read or written."""
    with tempfile.TemporaryDirectory(prefix="llmops-helm-") as home:
        yield {
            "HELM_CACHE_HOME": os.path.join(home, "cache"),
            "HELM_CONFIG_HOME": os.path.join(home, "config"),
            "HELM_DATA_HOME": os.path.join(home, "data"),
        }


@pytest.fixture(scope="session")
def timings():
    """Seconds per (role, step), printed as a table at the end (pytest -s shows it; docs/addons.md quotes it)."""
    measured = {}
    yield measured
    if measured:
        print("\n| role | step | seconds |\n| --- | --- | --- |")
        for (role, step), seconds in measured.items():
            print(f"| {role} | {step} | {seconds:.1f} |")


@pytest.fixture
def addons(api_client, ansible_playbook, chart_repo, helm_home, tmp_path, timings):
    """Run playbooks/cluster_addons.yml for one role in apply mode against the test bed.

    addons(role, step, **vars) -> (PlaybookRun, changed count); vars are the playbook's extra vars."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    k8s_control:\n      hosts:\n        localhost:\n"
        f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"
    )
    helm_dir = os.path.dirname(HELM)
    env = dict(helm_home, HELM_BIN=HELM, PATH=helm_dir + os.pathsep + os.environ.get("PATH", ""))

    def run(role, step, **extra_vars):
        variables = {
            "llmops_apply_mode": "apply",
            "llmops_kubeconfig": KUBECONFIG,
            "llmops_chart_source": "repo",
            f"{role}_enabled": True,
            "helm_release_poll_delay": 1,
            "helm_release_poll_retries": 60,
            "helm_release_timeout": "2m",
        }
        variables.update(extra_vars)
        vars_file = tmp_path / f"vars-{role}-{step}.json"
        vars_file.write_text(json.dumps(variables))
        start = time.monotonic()
        result = ansible_playbook(
            PLAYBOOK, "-i", str(inventory), "--tags", role, "-e", f"@{vars_file}", extra_env=env, json_output=True
        )
        timings[(role, step)] = time.monotonic() - start
        try:
            changed = result.stats()["localhost"]["changed"]
        except (ValueError, KeyError):
            changed = None
        return result, changed

    return run


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def volcano_queue(api_client):
    """True when Volcano's default queue is Open (TESTBED_VOLCANO=1 opens it; no vc-controller runs here)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        queue = client.CustomObjectsApi(api_client).get_cluster_custom_object(
            "scheduling.volcano.sh", "v1beta1", "queues", "default"
        )
    except ApiException:
        return False
    return (queue.get("status") or {}).get("state") == "Open"
