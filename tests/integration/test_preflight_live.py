"""The pre-flight's apply-mode checks against the real test bed (read only: nothing is created).

One real ansible-playbook run of playbooks/preflight.yml on inventories/testbed with two k8s_control hosts:
``fits`` is the bed's own 2 x 8 A800 DeepSeek setup and must pass every cluster check (API, nodes with 8
allocatable nvidia.com/gpu and the rdma/ib the pods request); ``sixteen_per_node`` plans one pod of 16 GPUs,
which the planner accepts but no node of the bed can hold (8 per A800 node), so it is refused with every
node's allocatable listed (an LWS larger than the nodes that can hold it: tests/unit/.../test_preflight.py).
The last pre-flight play then stops both (one host was refused).
"""

import json
import os

import yaml
from testbed_support import KUBECONFIG

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cluster_checks_on_the_bed(api_client, ansible_playbook, tmp_path):
    base = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "llmops_kubeconfig": KUBECONFIG,
    }
    hosts = {"fits": dict(base), "sixteen_per_node": dict(base, llmops_nodes=1, llmops_accelerators_per_node=16)}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"k8s_control": {"hosts": hosts}}))
    run = ansible_playbook(
        os.path.join(ROOT, "playbooks", "preflight.yml"),
        "-i",
        os.path.join(ROOT, "inventories", "testbed"),
        "-i",
        str(tmp_path / "hosts.yml"),
        "--limit",
        "fits,sixteen_per_node",
        json_output=True,
    )
    report = json.loads(run.output[run.output.index("{") :])
    failed = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") and host not in failed:
                    failed[host] = (play["play"]["name"], task["task"]["name"], result.get("msg", ""))
    # fits passed every check and was only stopped by the last play, because sixteen_per_node was refused.
    assert failed["fits"][0] == "Preflight | stop every stage when a host was refused", failed["fits"]
    assert "sixteen_per_node" in failed["fits"][2] and "fits" not in failed["fits"][2].split("refused")[1].split("(")[0]
    play, task, message = failed["sixteen_per_node"]
    assert task == "Refuse a plan the nodes cannot hold (allocatable accelerators and RDMA per node)"
    message = " ".join(message.split())
    assert "the plan needs 1 node(s) with 16 allocatable nvidia.com/gpu and 4 rdma/ib each" in message
    assert "the cluster has 0 (gpu-a800-0: 8 nvidia.com/gpu" in message and "llmops_accelerators_per_node" in message


def test_unreachable_api_is_named(ansible_playbook, tmp_path):
    """A kubeconfig pointing at a closed port (no test bed needed): refused before any build step reads the API."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}],
                "current-context": "x",
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    run = ansible_playbook(
        os.path.join(ROOT, "playbooks", "preflight.yml"),
        "-i",
        os.path.join(ROOT, "inventories", "testbed"),
        "-e",
        "llmops_kubeconfig=%s" % kubeconfig,
    )
    output = " ".join(run.output.split())
    assert run.returncode != 0
    assert "Preflight cannot reach the Kubernetes API with llmops_kubeconfig=%s" % kubeconfig in output
    assert "Read the installed LeaderWorkerSet version" not in output
