"""Helpers shared by the test bed integration tests (fixtures live in conftest.py)."""

import os
import subprocess
import time
import types
import urllib.request

import pytest
from kubernetes.client.rest import ApiException

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBECONFIG = os.environ.get("TESTBED_KUBECONFIG", os.path.join(ROOT, ".state", "testbed", "kubeconfig"))
GPU_NODES = ("gpu-a800-0", "gpu-a800-1")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # never pulled: kwok only simulates the container


def bed_script(name, *args, timeout=1200):
    """Run scripts/testbed/<name> ARGS; fail with the end of its stderr unless it succeeds.
    Returns .printed (the last line it printed), .logged (its last log line) and .seconds (how long it took)."""
    started = time.monotonic()
    done = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "testbed", name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, "%s %s failed:\n%s" % (name, " ".join(args), done.stderr[-4000:])
    printed = done.stdout.strip().splitlines()
    logged = done.stderr.strip().splitlines()
    return types.SimpleNamespace(
        printed=printed[-1] if printed else "",
        logged=logged[-1] if logged else "",
        seconds=time.monotonic() - started,
    )


def wait_for(condition, timeout=60, interval=0.5, what="condition"):
    """Poll condition() until it returns a truthy value; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def exists(read, *args):
    try:
        read(*args)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def wait_pods_gone(core, namespace, label_selector):
    """GPUs are held until a pod object is gone; later tests need the nodes free again."""
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector=label_selector).items,
        what=f"pods {label_selector} deleted",
    )


VOLCANO_HEALTHZ_PORT_FILE = os.path.join(ROOT, ".state", "testbed", "volcano", "healthz-port")


def volcano_running():
    """Whether the test bed's Volcano scheduler answers (TESTBED_VOLCANO=1 cluster-up)."""
    try:
        with open(VOLCANO_HEALTHZ_PORT_FILE) as handle:
            port = handle.read().strip()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
    except OSError:
        return False
    return True


def wait_for_vllm_image(nodes):
    """cluster-up imports the vllm-cpu image (GBs) into the real nodes in the background: wait for it on ``nodes``
    with the script `make demo` uses (scripts/testbed/wait-images.sh); fail with its last lines."""
    env = dict(os.environ, TESTBED_STATE_DIR=os.path.dirname(KUBECONFIG))
    done = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "testbed", "wait-images.sh")] + list(nodes),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail("the vllm-cpu image is not on %s: %s" % (", ".join(nodes), done.stderr[-2000:]))
    return done.stderr.strip().splitlines()[-1]
