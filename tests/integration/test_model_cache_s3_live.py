"""The model cache's s3 source, for real: roles/model_cache through ansible-playbook in apply mode on the
test bed's real nodes, downloading from the bed's real S3 server.

Real here: ansible-playbook and the role, the kube-apiserver, Job controller and scheduler, the kubelets
of llmops-real-0/1 with containerd and runc, MinIO (scripts/testbed/s3-up.sh, built from its Go module)
serving s3://llmops-models/tiny-qwen2/, and the downloader image's AWS CLI (Debian bookworm's awscli,
built by scripts/testbed/image_build.py aws-cli). The credentials are the ones s3-up.sh generated; they
reach the role as model_cache_s3_access_key/secret_key (from a vault in production), never argv or output.

Both real nodes are network namespaces of one host, so their host paths are the same folder of the host:
each node's staging Job runs pinned to its node, and whichever finishes second may find the folder
already complete (its outcome, the pod's termination message, says it skipped). On separate machines
each would download.
Skips when the test bed is not up or runs no real nodes (as test_testbed_real_nodes.py); fails when the
bed is up with real nodes but without its S3 server (unless TESTBED_S3=0).
"""

import json
import os
import subprocess
import time
import uuid

import pytest
import yaml
from kubernetes import client
from testbed_support import KUBECONFIG, ROOT, wait_for

NODES = ["llmops-real-0", "llmops-real-1"]
# beside the kubeconfig: the state of the bed the tests use (TESTBED_KUBECONFIG may name another checkout's)
NODES_STATE = os.path.join(os.path.dirname(KUBECONFIG), "nodes")
S3_STATE = os.environ.get("TESTBED_S3_STATE", os.path.join(os.path.dirname(KUBECONFIG), "s3"))
PLAYBOOK = "tests/integration/playbooks/model_cache_live.yml"
SCRIPT = os.path.join(ROOT, "roles", "model_cache", "files", "download-model.sh")
PLAN = os.path.join(ROOT, "tests", "integration", "fixtures", "plans", "deepseek-r1-2x8-a800-sglang.yml")
URI = "s3://llmops-models/tiny-qwen2"
TOLERATION = {"key": "llmops.io/real-node", "operator": "Exists", "effect": "NoSchedule"}


def aws_cli_image():
    with open(os.path.join(ROOT, "testbed", "images", "images.json")) as handle:
        return json.load(handle)["aws-cli"]["tags"][0]


@pytest.fixture(scope="module")
def s3(core):
    if os.environ.get("TESTBED_S3") == "0":
        pytest.skip("the test bed runs no S3 server (TESTBED_S3=0)")
    if not os.path.isdir(NODES_STATE):
        pytest.skip(f"the test bed runs no real nodes ({NODES_STATE} missing)")
    endpoint_file = os.path.join(S3_STATE, "endpoint")
    assert os.path.exists(endpoint_file), f"no S3 server: {endpoint_file} missing (scripts/testbed/s3-up.sh)"
    with open(endpoint_file) as handle:
        endpoint = handle.read().strip()
    assert endpoint.startswith("http://10.213.0.1:"), f"S3 server on {endpoint}, not reachable from pods"
    keys = {}
    with open(os.path.join(S3_STATE, "credentials.env")) as handle:
        for line in handle:
            key, _sep, value = line.strip().partition("=")
            keys[key] = value
    return Keys(endpoint=endpoint, access=keys["AWS_ACCESS_KEY_ID"], secret=keys["AWS_SECRET_ACCESS_KEY"])


class Keys(dict):
    """The endpoint and keys; its repr (what pytest prints for a failing test's arguments) shows no key."""

    def __repr__(self):
        return f"Keys(endpoint={self['endpoint']!r}, access=<masked>, secret=<masked>)"


def cache_vars(namespace, s3, host_path, name, secret=None):
    with open(PLAN) as handle:
        plan = yaml.safe_load(handle)
    image = aws_cli_image()
    return {
        "llmops_apply_mode": "apply",
        "llmops_kubeconfig": KUBECONFIG,
        "llmops_namespace": namespace,
        "llmops_plan": plan,
        "model_cache_name": name,
        "model_cache_source": "s3",
        "model_cache_s3_uri": URI,
        "model_cache_s3_endpoint": s3["endpoint"],
        "model_cache_s3_access_key": s3["access"],
        "model_cache_s3_secret_key": secret or s3["secret"],
        "model_cache_storage": "host_path",
        "model_cache_host_path": str(host_path),
        "model_cache_model_gib": 0.001,
        "model_cache_server_replicas": 1,
        "model_cache_stage_nodes": NODES,
        "model_cache_accelerator_vendor": "nvidia",
        "model_cache_extra_tolerations": [TOLERATION],
        "model_cache_images": {"s3": image, "huggingface": image, "modelscope": image},
        # the real nodes have the host's 2 cores; the defaults (4 CPUs, 8Gi) are for real servers
        "model_cache_download_cpu": "500m",
        "model_cache_download_memory": "384Mi",
        "model_cache_download_poll_seconds": 2,
        "model_cache_download_timeout": 110,
    }


def run(ansible_playbook, tmp_path, extra):
    varfile = tmp_path / f"vars-{uuid.uuid4().hex[:6]}.json"
    varfile.write_text(json.dumps(extra))  # a file of the test's own: the keys stay off argv
    return ansible_playbook(PLAYBOOK, "-e", f"@{varfile}", json_output=True)


def job_pods(core, namespace, name):
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}").items
    return {pod.metadata.name: pod for pod in pods}


def outcome(pod):
    """The downloader's termination message: its outcome line (download-model.sh writes it there)."""
    return pod.status.container_statuses[0].state.terminated.message or ""


def assert_no_keys(result, s3):
    for key in (s3["access"], s3["secret"]):
        assert key not in result.output, "an S3 key appeared in the playbook's output"


def test_s3_cache_is_staged_on_both_real_nodes_and_then_skipped(ansible_playbook, core, namespace, s3, tmp_path):
    host_path = tmp_path / "models"
    name = f"tiny-{uuid.uuid4().hex[:6]}"
    extra = cache_vars(namespace, s3, host_path, name)
    start = time.monotonic()
    first = run(ansible_playbook, tmp_path, extra)
    assert first.returncode == 0, first.output[-4000:]
    elapsed = time.monotonic() - start
    assert_no_keys(first, s3)
    assert first.stats()["localhost"]["changed"] > 0

    batch = client.BatchV1Api(core.api_client)
    jobs = batch.list_namespaced_job(namespace, label_selector=f"app.kubernetes.io/name={name}").items
    assert len(jobs) == 2 and all(job.status.succeeded == 1 for job in jobs)
    pods = job_pods(core, namespace, name)
    assert sorted(pod.spec.node_name for pod in pods.values()) == NODES  # one Job per node, pinned there
    outcomes = {name: outcome(pod) for name, pod in pods.items()}
    # at least one synced from MinIO (both share the host's disk, see above), the other downloaded or skipped
    assert any("model cache ready" in text for text in outcomes.values()), outcomes
    assert all("model cache ready" in text or "skipping the download" in text for text in outcomes.values())
    for pod in pods.values():
        status = pod.status.container_statuses[0].state.terminated
        print(f"{pod.spec.node_name}: Job pod ran {(status.finished_at - status.started_at).total_seconds():.1f}s")
    print(f"first run (two staging Jobs, download, verify): {elapsed:.1f}s; outcomes {sorted(outcomes.values())}")

    model = host_path / "llmops-models--tiny-qwen2"
    for file in ("config.json", "model.safetensors.index.json"):
        assert (model / file).stat().st_size > 0
    verify = subprocess.run(
        ["/bin/sh", SCRIPT, "verify"], env={"PATH": os.environ["PATH"], "LLMOPS_MODEL_DIR": str(model)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0 and "complete" in verify.stdout, verify.stdout
    assert (model / ".llmops-complete").read_text() == f"s3|||{URI}"

    # The same input again: the Jobs (named after their spec) are unchanged, nothing runs, changed=0.
    second = run(ansible_playbook, tmp_path, extra)
    assert second.returncode == 0, second.output[-4000:]
    assert second.stats()["localhost"]["changed"] == 0, second.changed_tasks()
    assert job_pods(core, namespace, name).keys() == pods.keys()

    # Jobs gone (cleaned up by hand or a TTL): new staging Jobs find the stamped cache and skip the download;
    # creating them is a change.
    for job in jobs:
        batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Foreground")
    wait_for(
        lambda: (
            not job_pods(core, namespace, name)
            and not batch.list_namespaced_job(namespace, label_selector=f"app.kubernetes.io/name={name}").items
        ),
        timeout=60,
        what="the staging Jobs and their pods gone",
    )
    third = run(ansible_playbook, tmp_path, extra)
    assert third.returncode == 0, third.output[-4000:]
    assert third.stats()["localhost"]["changed"] > 0
    outcomes = {name: outcome(pod) for name, pod in job_pods(core, namespace, name).items()}
    assert len(outcomes) == 2 and all("skipping the download" in text for text in outcomes.values()), outcomes


def test_a_wrong_secret_key_fails_the_job_at_once_and_the_role_says_why(
    ansible_playbook, core, namespace, s3, tmp_path
):
    name = f"bad-{uuid.uuid4().hex[:6]}"
    wrong = "W" * 40
    extra = cache_vars(namespace, s3, tmp_path / "models", name, secret=wrong)
    start = time.monotonic()
    result = run(ansible_playbook, tmp_path, extra)
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert_no_keys(result, s3)
    assert wrong not in result.output
    # podFailurePolicy: the script's exit 3 fails the Job with no retries; the role shows the reason and the log
    assert "PodFailurePolicy" in result.output, result.output[-4000:]
    assert "SignatureDoesNotMatch" in result.output and "retrying cannot help" in result.output
    batch = client.BatchV1Api(core.api_client)
    jobs = batch.list_namespaced_job(namespace, label_selector=f"app.kubernetes.io/name={name}").items
    assert jobs and all((job.status.failed or 0) <= 1 for job in jobs)  # one pod each, not backoffLimit of them
    failed = [r for r in result.task_results("with its reason and last log lines") if r.get("failed")]
    assert len(failed) == 2  # both staging Jobs, each with its own reason
    print(f"wrong secret key: the play failed after {elapsed:.1f}s: {failed[0]['msg']}")
    assert elapsed < 100
