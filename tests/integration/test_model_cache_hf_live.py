"""The model cache's huggingface source, for real: roles/model_cache through ansible-playbook in apply mode on
the test bed's real nodes, downloading through the bed's Hugging Face Hub mirror.

Real here: ansible-playbook and the role, the kube-apiserver, Job controller and scheduler, the kubelets of
llmops-real-0/1 with containerd and runc, olah (scripts/testbed/hf-up.sh: the PyPI Hub mirror, offline, on the
bridge address) serving llmops/tiny-qwen2, reached by the role's model_cache_hf_endpoint (HF_ENDPOINT in the
pod), and huggingface_hub's snapshot_download in the bed's vllm-cpu image (huggingface_hub 2.4.0; the role's
default downloader for this source is vLLM's image too). Nothing is simulated.

As in test_model_cache_s3_live.py, the two real nodes share the host's disk: whichever staging Job finishes
second may find the folder complete already. Skips when the bed runs no real nodes; fails when it does but
runs no Hub mirror (unless TESTBED_HF=0).
"""

import os
import subprocess
import time
import uuid

import pytest
import yaml
from kubernetes import client
from test_model_cache_s3_live import NODES, NODES_STATE, PLAN, SCRIPT, TOLERATION, job_pods, outcome, run
from testbed_support import KUBECONFIG, wait_for, wait_for_vllm_image

HF_STATE = os.environ.get("TESTBED_HF_STATE", os.path.join(os.path.dirname(KUBECONFIG), "hf"))
REPO_ID = "llmops/tiny-qwen2"
IMAGE = "llmops.invalid/testbed/vllm-cpu:v0.32.0"


@pytest.fixture(scope="module")
def hf():
    if os.environ.get("TESTBED_HF") == "0":
        pytest.skip("the test bed runs no Hugging Face mirror (TESTBED_HF=0)")
    if not os.path.isdir(NODES_STATE):
        pytest.skip(f"the test bed runs no real nodes ({NODES_STATE} missing)")
    endpoint_file = os.path.join(HF_STATE, "endpoint")
    assert os.path.exists(endpoint_file), f"no Hub mirror: {endpoint_file} missing (scripts/testbed/hf-up.sh)"
    with open(endpoint_file) as handle:
        endpoint = handle.read().strip()
    assert endpoint.startswith("http://10.213.0.1:"), f"Hub mirror on {endpoint}, not reachable from pods"
    with open(os.path.join(HF_STATE, "revision")) as handle:
        revision = handle.read().strip()

    # cluster-up imports vllm-cpu into the real nodes in the background (nodes-up.sh)
    wait_for_vllm_image(NODES)
    return {"endpoint": endpoint, "revision": revision}


def served_requests():
    """File downloads the mirror answered to pods (not to the host's loopback), from its access log."""
    with open(os.path.join(HF_STATE, "olah.log")) as handle:
        lines = handle.read().splitlines()
    return [line for line in lines if f'"GET /{REPO_ID}/resolve/' in line and "127.0.0.1:" not in line]


def served_files(hf):
    """The files of the commit the mirror serves, from its git repository: {name: bytes}."""
    git = ["git", "--git-dir", os.path.join(HF_STATE, "mirrors", "models", REPO_ID)]
    listed = subprocess.run([*git, "ls-tree", "-r", "--name-only", hf["revision"]], capture_output=True, check=True)
    return {
        name: subprocess.run([*git, "show", f"{hf['revision']}:{name}"], capture_output=True, check=True).stdout
        for name in listed.stdout.decode().split()
    }


def cache_vars(namespace, hf, host_path, name):
    with open(PLAN) as handle:
        plan = yaml.safe_load(handle)
    return {
        "llmops_apply_mode": "apply",
        "llmops_kubeconfig": KUBECONFIG,
        "llmops_namespace": namespace,
        "llmops_plan": plan,
        "model_cache_name": name,
        "model_cache_source": "huggingface",
        "model_cache_model_id": REPO_ID,
        "model_cache_hf_endpoint": hf["endpoint"],
        "model_cache_storage": "host_path",
        "model_cache_host_path": str(host_path),
        "model_cache_model_gib": 0.001,
        "model_cache_server_replicas": 1,
        "model_cache_stage_nodes": NODES,
        "model_cache_accelerator_vendor": "nvidia",
        "model_cache_extra_tolerations": [TOLERATION],
        "model_cache_images": {"s3": IMAGE, "huggingface": IMAGE, "modelscope": IMAGE},
        # the real nodes have the host's 2 cores; the defaults (4 CPUs, 8Gi) are for real servers
        "model_cache_download_cpu": "500m",
        "model_cache_download_memory": "512Mi",
        "model_cache_download_poll_seconds": 2,
        "model_cache_download_timeout": 110,
    }


def test_hf_mirror_cache_is_staged_on_both_real_nodes_and_then_skipped(ansible_playbook, core, namespace, hf, tmp_path):
    host_path = tmp_path / "models"
    name = f"hf-{uuid.uuid4().hex[:6]}"
    extra = cache_vars(namespace, hf, host_path, name)
    before = len(served_requests())
    start = time.monotonic()
    first = run(ansible_playbook, tmp_path, extra)
    assert first.returncode == 0, first.output[-4000:]
    elapsed = time.monotonic() - start
    assert first.stats()["localhost"]["changed"] > 0

    batch = client.BatchV1Api(core.api_client)
    jobs = batch.list_namespaced_job(namespace, label_selector=f"app.kubernetes.io/name={name}").items
    assert len(jobs) == 2 and all(job.status.succeeded == 1 for job in jobs)
    pods = job_pods(core, namespace, name)
    assert sorted(pod.spec.node_name for pod in pods.values()) == NODES
    outcomes = {pod_name: outcome(pod) for pod_name, pod in pods.items()}
    assert any("model cache ready" in text for text in outcomes.values()), outcomes
    assert all("model cache ready" in text or "skipping the download" in text for text in outcomes.values())
    for pod in pods.values():
        status = pod.status.container_statuses[0].state.terminated
        print(f"{pod.spec.node_name}: Job pod ran {(status.finished_at - status.started_at).total_seconds():.1f}s")
    print(f"first run (two staging Jobs, download, verify): {elapsed:.1f}s; outcomes {sorted(outcomes.values())}")

    # the files came from the mirror, over the pod network, byte for byte the folder it serves
    fetched = served_requests()[before:]
    names = served_files(hf)
    assert len(fetched) >= len(names), fetched
    model = host_path / "llmops--tiny-qwen2"
    assert sorted(entry for entry in os.listdir(model) if not entry.startswith(".")) == sorted(names)
    for entry, data in names.items():
        assert (model / entry).read_bytes() == data, entry
    verify = subprocess.run(
        ["/bin/sh", SCRIPT, "verify"], env={"PATH": os.environ["PATH"], "LLMOPS_MODEL_DIR": str(model)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0 and "complete" in verify.stdout, verify.stdout
    assert (model / ".llmops-complete").read_text() == f"huggingface|{REPO_ID}||"

    # The same input again: the Jobs (named after their spec) are unchanged, nothing runs, changed=0.
    second = run(ansible_playbook, tmp_path, extra)
    assert second.returncode == 0, second.output[-4000:]
    assert second.stats()["localhost"]["changed"] == 0, second.changed_tasks()

    # Jobs gone: new staging Jobs find the stamped cache and skip the download, asking the mirror for nothing.
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
    served = len(served_requests())
    third = run(ansible_playbook, tmp_path, extra)
    assert third.returncode == 0, third.output[-4000:]
    outcomes = {pod_name: outcome(pod) for pod_name, pod in job_pods(core, namespace, name).items()}
    assert len(outcomes) == 2 and all("skipping the download" in text for text in outcomes.values()), outcomes
    assert len(served_requests()) == served
