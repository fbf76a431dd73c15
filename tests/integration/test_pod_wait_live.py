"""The pod_wait role on the live test bed: a wait stops at once, with the reason, on a pod that cannot resolve.

Real: ansible-playbook, kubernetes.core.k8s_info/k8s_log, the kube-scheduler, and pods on the real kubelet +
containerd nodes (an image that does not exist, a Secret that does not exist, a container that exits 3, a
pod asking for 9 GPUs). Each run must end in seconds, not after its 300 s timeout.
"""

import json
import time

import pytest
from kubernetes import client
from testbed_support import KUBECONFIG

PYTHON_IMAGE = "llmops.invalid/testbed/python:3.11"
REAL = {
    "node_selector": {"type": "real"},
    "tolerations": [client.V1Toleration(key="llmops.io/real-node", operator="Exists", effect="NoSchedule")],
}
CASES = {
    "image": (
        {"image": "llmops.invalid/testbed/no-such-image:1"},
        REAL,
        ["ImagePullBackOff", "ErrImagePull"],
        "no-such-image",
    ),
    "secret": (
        {
            "command": ["sleep", "600"],
            "env": [
                client.V1EnvVar(
                    name="API_KEY",
                    value_from=client.V1EnvVarSource(
                        secret_key_ref=client.V1SecretKeySelector(name="no-such-secret", key="api-key")
                    ),
                )
            ],
        },
        REAL,
        ["CreateContainerConfigError"],
        'secret "no-such-secret" not found',
    ),
    # the probe, like an engine's, keeps the pod from counting as Ready for the instant it runs
    "crash": (
        {
            "command": ["python3", "-c", "import sys; print('RuntimeError: KV cache does not fit'); sys.exit(3)"],
            "readiness_probe": client.V1Probe(_exec=client.V1ExecAction(command=["false"]), period_seconds=1),
        },
        REAL,
        ["CrashLoopBackOff"],
        "RuntimeError: KV cache does not fit",
    ),
    "gpus": (
        {"resources": client.V1ResourceRequirements(limits={"nvidia.com/gpu": "9"})},
        {"tolerations": [client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]},
        ["Unschedulable"],
        "Insufficient nvidia.com/gpu",
    ),
}


def _pod(name, container, placement):
    spec = dict(image=PYTHON_IMAGE, name="engine", image_pull_policy="IfNotPresent")
    spec.update(container)
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(containers=[client.V1Container(**spec)], **placement),
    )


@pytest.fixture(scope="module")
def stuck_pods(core, namespace):
    for case, (container, placement, _reasons, _words) in CASES.items():
        core.create_namespaced_pod(namespace, _pod("stuck-" + case, container, placement))
    return namespace


def _wait(ansible_playbook, namespace, selector, **extra):
    settings = {
        "llmops_kubeconfig": KUBECONFIG,
        "pod_wait_what": "the test pods",
        "pod_wait_namespace": namespace,
        "pod_wait_label_selectors": [selector],
        "pod_wait_timeout": 300,
        "pod_wait_poll_seconds": 2,
        "pod_wait_crash_restarts": 1,
        "pod_wait_unschedulable_grace_seconds": 0,
    }
    settings.update(extra)
    started = time.monotonic()
    run = ansible_playbook("tests/integration/playbooks/pod_wait.yml", "-e", json.dumps(settings))
    return run, time.monotonic() - started


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stuck_pod_stops_the_wait_with_its_reason(ansible_playbook, stuck_pods, case):
    _container, _placement, reasons, words = CASES[case]
    run, seconds = _wait(ansible_playbook, stuck_pods, "app=stuck-" + case)
    assert run.returncode == 2, run.output[-3000:]
    assert "the test pods cannot become ready by waiting" in run.output
    assert any(
        "stuck-%s/engine: %s" % (case, reason) in run.output or "stuck-%s: %s" % (case, reason) in run.output
        for reason in reasons
    ), run.output[-3000:]
    assert words in run.output, run.output[-3000:]
    # stopped by the diagnosis, far before the 300 s timeout (a crash loop needs its first restart)
    assert seconds < 120, seconds


def test_a_ready_pod_ends_the_wait_and_a_missing_one_times_out(ansible_playbook, core, namespace):
    server = _pod(
        "ready",
        {
            "command": ["python3", "-m", "http.server", "8000"],
            "readiness_probe": client.V1Probe(http_get=client.V1HTTPGetAction(path="/", port=8000), period_seconds=1),
        },
        REAL,
    )
    core.create_namespaced_pod(namespace, server)
    run, _seconds = _wait(ansible_playbook, namespace, "app=ready", pod_wait_timeout=120)
    assert run.returncode == 0, run.output[-3000:]
    run, _seconds = _wait(ansible_playbook, namespace, "app=ready", pod_wait_expected=2, pod_wait_timeout=4)
    assert run.returncode == 2 and "did not become ready within 4 s: 1 of 2 pods ready; 1 not created yet" in run.output
