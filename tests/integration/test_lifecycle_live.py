"""playbooks/status.yml, upgrade.yml and uninstall.yml against the test bed's REAL nodes (docs/day_two.md).

inventories/testbed-real as it is (the SGLang group across llmops-real-0/1, the engine stand-in under SGLang's tag,
the tiny Qwen2 from the bed's MinIO), in a namespace of its own, with the model cache on PVCs (one per engine pod,
staged on both real nodes as the inventory says): a StorageClass without a provisioner and two hostPath
PersistentVolumes made here (the bed has no storage provisioner; all removed afterwards), so that the uninstall has
PVCs to keep.

Real: ansible-playbook and every role, the kube-apiserver, scheduler, LWS controller and its rolling update, the
kubelets and containerd of the real nodes, the staging Job's download from MinIO, the probes, the NodePort Service,
the API key. Simulated: the GPUs (our device plugin) and SGLang's model execution (the stand-in).

The upgrade's second engine version is the stand-in image tagged a second time in both real nodes' containerd
(`ctr images tag`, removed afterwards), as a mirror would serve a new release. Times are printed (-s).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException
from render_helpers import ansible_env
from testbed_support import KUBECONFIG, ROOT, exists, wait_for

STATE = os.path.dirname(KUBECONFIG)
NODES_STATE = os.path.join(STATE, "nodes")
NAME = "tiny-qwen2"  # the server name inventories/testbed-real derives from its served model name
IMAGE = "docker.io/lmsysorg/sglang:v0.5.23"
NEW_IMAGE = "docker.io/lmsysorg/sglang:v0.5.24"
REAL_NODES = ("llmops-real-0", "llmops-real-1")


def log(message):
    print("[lifecycle-live] %s" % message, flush=True)


def playbook(name, extra_vars, *args):
    """ansible-playbook playbooks/<name> -i inventories/testbed-real with the json callback: (rc, output, stats)."""
    path = os.path.join(ROOT, ".build", "lifecycle-vars-%s.json" % uuid.uuid4().hex[:8])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(extra_vars, handle)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/" + name]
            + ["-i", "inventories/testbed-real", "-e", "@" + path]
            + list(args),
            cwd=ROOT,
            env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        os.unlink(path)
    seconds = time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {"stats": {}, "plays": []}
    log("%s %s: rc %d in %.0f s, stats %s" % (name, " ".join(args), done.returncode, seconds, report["stats"]))
    return done.returncode, done.stdout + done.stderr, report


def changed_tasks(report):
    return [
        task["task"]["name"]
        for play in report["plays"]
        for task in play["tasks"]
        if any(result.get("changed") for result in task["hosts"].values())
    ]


def messages(report):
    """Every debug msg and failure msg of the run, as text."""
    found = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                for item in result.get("results") or [result]:
                    msg = item.get("msg")
                    if msg:
                        found.append(msg if isinstance(msg, str) else json.dumps(msg))
    return "\n".join(found)


def ctr(node, *args):
    socket = os.path.join(NODES_STATE, node, "containerd", "containerd.sock")
    return subprocess.run(
        ["ctr", "--address", socket, "-n", "k8s.io", "images"] + list(args), capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def real_nodes(core):
    if not os.path.isdir(NODES_STATE):
        pytest.skip(f"the test bed runs no real nodes ({NODES_STATE} missing; TESTBED_REAL_NODES=2 make cluster-up)")
    names = sorted(node.metadata.name for node in core.list_node(label_selector="type=real").items)
    assert names[:2] == list(REAL_NODES), "the lifecycle test needs both real nodes, found %s" % names
    return names[:2]


@pytest.fixture(scope="module")
def storage(api_client, namespace):
    """A StorageClass with no provisioner and two hostPath PVs on the real nodes (their host is this machine): the
    inventory stages the cache on both real nodes, one claim per engine pod (ReadWriteOnce, as where no RWX storage
    exists)."""
    name = "llmops-lifecycle-%s" % uuid.uuid4().hex[:6]
    storage_api = client.StorageV1Api(api_client)
    core = client.CoreV1Api(api_client)
    storage_api.create_storage_class(
        client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=name),
            provisioner="kubernetes.io/no-provisioner",
            volume_binding_mode="WaitForFirstConsumer",
        )
    )
    folders = []
    for index in range(2):
        folder = "/tmp/%s-%d" % (name, index)
        os.makedirs(folder)
        os.chmod(folder, 0o777)
        folders.append(folder)
        core.create_persistent_volume(
            client.V1PersistentVolume(
                metadata=client.V1ObjectMeta(name="%s-%d" % (name, index)),
                spec=client.V1PersistentVolumeSpec(
                    capacity={"storage": "20Gi"},
                    access_modes=["ReadWriteOnce"],
                    storage_class_name=name,
                    persistent_volume_reclaim_policy="Retain",
                    host_path=client.V1HostPathVolumeSource(path=folder, type="Directory"),
                    # A hostPath volume is local to the nodes that have the folder: the real nodes.
                    node_affinity=client.V1VolumeNodeAffinity(
                        required=client.V1NodeSelector(
                            node_selector_terms=[
                                client.V1NodeSelectorTerm(
                                    match_expressions=[
                                        client.V1NodeSelectorRequirement(key="type", operator="In", values=["real"])
                                    ]
                                )
                            ]
                        )
                    ),
                ),
            )
        )
    yield name
    # The volumes wait (pv-protection) until the namespace fixture's deletion takes the claims with them.
    for index in range(2):
        core.delete_persistent_volume("%s-%d" % (name, index))
    storage_api.delete_storage_class(name)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def base_vars(namespace, storage_class):
    return {
        "llmops_kubeconfig": KUBECONFIG,
        "testbed_state_dir": STATE,
        "llmops_namespace": namespace,
        "model_cache_storage": "pvc",
        "model_cache_storage_class": storage_class,
        "model_cache_access_mode": "ReadWriteOnce",
        # another deployment of the bed (the molecule serve scenario) holds NodePort 30180
        "inference_exposure_node_port": 0,
        # short shutdown budget: a stand-in worker restarted while its pod terminates keeps it for the whole grace
        "inference_server_prestop_sleep_seconds": 1,
        "inference_server_drain_seconds": 5,
        "inference_verify_ready_timeout": 180,
        "inference_verify_load_test_requests": 0,
        "lifecycle_upgrade_poll_seconds": 2,
        "lifecycle_upgrade_timeout": 240,
    }


def engine_pods(core, namespace):
    selector = "app.kubernetes.io/name=%s,app.kubernetes.io/component=inference-server" % NAME
    return [
        pod
        for pod in core.list_namespaced_pod(namespace, label_selector=selector).items
        if pod.metadata.deletion_timestamp is None
    ]


def ready(pod):
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def group_ready(core, namespace, image):
    pods = engine_pods(core, namespace)
    return len(pods) == 2 and all(ready(p) and p.spec.containers[0].image == image for p in pods) and pods


@pytest.fixture(scope="module")
def deployed(api_client, core, namespace, storage, real_nodes):
    """serve.yml of inventories/testbed-real in apply mode; returns the vars every later run uses."""
    settings = base_vars(namespace, storage)
    started = time.monotonic()
    rc, output, _report = playbook("serve.yml", settings)
    assert rc == 0, output[-4000:]
    wait_for(lambda: group_ready(core, namespace, IMAGE), timeout=180, interval=2, what="the group Ready")
    log("deployed and Ready %.0f s after the serve stage started" % (time.monotonic() - started))
    service = core.read_namespaced_service("%s-api" % NAME, namespace)
    node = core.read_node(real_nodes[1])
    address = next(a.address for a in node.status.addresses if a.type == "InternalIP")
    settings["inference_verify_base_url"] = "http://%s:%d" % (address, service.spec.ports[0].node_port)
    return settings


def test_status_prints_the_table_and_changes_nothing(deployed):
    rc, output, report = playbook("status.yml", deployed, "--check")
    assert rc == 0, output[-4000:]
    assert report["stats"]["localhost"]["changed"] == 0, changed_tasks(report)
    text = messages(report)
    assert "LeaderWorkerSet %s" % NAME in text and "sglang 0.5.23" in text, text[-3000:]
    assert "1/1 groups ready, pods 2/2 Ready" in text, text[-3000:]
    assert re.search(r"plan: tensor parallel\s+plan 2, runs 2\s+yes", text), text[-3000:]
    assert re.search(r"endpoint\s+0\.5\.23\s+answers\s+yes\s+models tiny-qwen2; answer in", text), text[-3000:]
    assert "metric: requests running" in text, text[-3000:]
    assert "leaderworkerset" in text  # the bed's LWS controller, shown for the multi-node plan
    log("status table:\n" + "\n".join(line for line in text.splitlines() if "plan:" in line or NAME in line))


@pytest.fixture(scope="module")
def new_image(real_nodes):
    """The stand-in tagged as a second SGLang release in both real nodes' containerd."""
    made = []
    for node in real_nodes:
        if NEW_IMAGE not in ctr(node, "ls", "-q").stdout.split():
            tagged = ctr(node, "tag", IMAGE, NEW_IMAGE)
            assert tagged.returncode == 0, tagged.stderr
            made.append(node)
    yield NEW_IMAGE
    for node in made:
        ctr(node, "rm", NEW_IMAGE)


def test_upgrade_refuses_what_the_cluster_cannot_hold_then_rolls_the_group(core, namespace, deployed, new_image):
    settings = dict(deployed, inference_server_image=new_image)
    before = {pod.metadata.uid for pod in engine_pods(core, namespace)}
    # No room for a second group beside the running one (both real nodes run a pod of it): refused, nothing changed.
    rc, output, report = playbook("upgrade.yml", settings, "--skip-tags", "preflight")
    assert rc != 0, output[-3000:]
    assert "refusing the upgrade: the cluster cannot hold a surge group beside the running one" in output, output[
        -3000:
    ]
    assert "llmops-real-0: room for 0 pod(s) (runs a pod of this server" in output, output[-3000:]
    assert report["stats"]["localhost"]["changed"] == 0, changed_tasks(report)
    assert {pod.metadata.uid for pod in engine_pods(core, namespace)} == before
    # Downtime accepted: the group is replaced in place, Ready on the new image, and the verify stage's answer came.
    settings["lifecycle_upgrade_allow_downtime"] = True
    started = time.monotonic()
    rc, output, report = playbook("upgrade.yml", settings)
    assert rc == 0, output[-4000:]
    text = messages(report)
    assert "leader engine: image %s -> %s" % (IMAGE, new_image) in text, text[-3000:]
    assert "maxSurge 0, maxUnavailable 1" in text
    pods = group_ready(core, namespace, new_image)
    assert pods, [(p.metadata.name, p.spec.containers[0].image) for p in engine_pods(core, namespace)]
    assert not before & {pod.metadata.uid for pod in pods}, "the group was not recreated"
    assert "answer (" in text and "llmops-engine-standin" in text, text[-3000:]
    log(
        "upgrade to %s: group recreated and answering %.0f s after the run started"
        % (new_image, time.monotonic() - started)
    )
    # Again: nothing rolls, nothing changes.
    rc, output, report = playbook("upgrade.yml", settings)
    assert rc == 0, output[-4000:]
    assert "nothing rolls: the pod templates are unchanged" in messages(report)
    assert report["stats"]["localhost"]["changed"] == 0, changed_tasks(report)
    assert {pod.metadata.uid for pod in engine_pods(core, namespace)} == {pod.metadata.uid for pod in pods}


def test_uninstall_keeps_the_pvc_and_a_second_run_changes_nothing(api_client, core, namespace, deployed):
    lws = dynamic.DynamicClient(api_client).resources.get(
        api_version="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet"
    )
    claim = "model-cache-%s-0" % NAME
    rc, output, report = playbook("uninstall.yml", deployed, "--check")
    assert rc == 0, output[-4000:]
    assert "delete LeaderWorkerSet/%s" % NAME in messages(report)
    assert "keep PersistentVolumeClaim/%s (model cache" % claim in messages(report)
    assert lws.get(name=NAME, namespace=namespace), "--check deleted the group"
    rc, output, report = playbook("uninstall.yml", deployed)
    assert rc == 0, output[-4000:]
    assert report["stats"]["localhost"]["changed"] > 0
    with pytest.raises(ApiException) as gone:
        lws.get(name=NAME, namespace=namespace)
    assert gone.value.status == 404
    assert not engine_pods(core, namespace)
    assert core.read_namespaced_persistent_volume_claim(claim, namespace).status.phase == "Bound"
    for kind, read in (("Service", core.read_namespaced_service), ("Secret", core.read_namespaced_secret)):
        name = "%s-api" % NAME if kind == "Service" else "%s-api-key" % NAME
        assert not exists(read, name, namespace), "%s %s left behind" % (kind, name)
    rc, output, report = playbook("uninstall.yml", deployed)
    assert rc == 0, output[-4000:]
    assert report["stats"]["localhost"]["changed"] == 0, changed_tasks(report)
    assert "keep PersistentVolumeClaim/%s" % claim in messages(report)
