"""Objects the add-on roles create themselves pass a server-side dry run against the real upstream CRDs.

The real ansible-playbook renders playbooks/cluster_addons.yml (render mode writes every object the roles would
apply); each object then goes to the test bed's kube-apiserver, which carries the CRDs of ../shared/crds, with
`kubectl apply --server-side --dry-run=server`: schema validation by the real CRDs, nothing stored.
The ClusterPolicy patch is a partial object: it is applied for real (after the role's own server dry run) to the
ClusterPolicy the chart created, in test_live_helm_roles.py (gpu_operator).
"""

import os
import subprocess

import pytest
import yaml
from test_render_and_bad_input import run_playbook
from testbed_support import KUBECONFIG, ROOT

KUBECTL = os.path.join(ROOT, ".build", "testbed", "bin", "kubectl")


@pytest.mark.parametrize("monitor_kind", ["PodMonitor", "ServiceMonitor"])
def test_rendered_objects_pass_a_server_side_dry_run(api_client, namespace, tmp_path, monitor_kind):
    result = run_playbook(
        tmp_path,
        "-e",
        "kuberay_enabled=true hami_enabled=true rdma_device_plugin_enabled=true",
        "-e",
        f"engine_monitoring_kind={monitor_kind} engine_monitoring_namespace={namespace}"
        f" engine_monitoring_dashboard_namespace={namespace}",
        "-e",
        '{"hami_gpu_nodes": ["gpu-a800-0"], "volcano_queue_capability": {"nvidia.com/gpu": 16}}',
    )
    assert result.returncode == 0, result.stdout[-4000:]
    rendered = sorted(
        os.path.join(folder, name)
        for folder, _dirs, names in os.walk(tmp_path / "rendered")
        for name in names
        if not name.startswith(("values-", "chart-"))
    )
    kinds = set()
    for path in rendered:
        with open(path) as handle:
            kinds.add(yaml.safe_load(handle)["kind"])
        dry_run = subprocess.run(
            [KUBECTL, "--kubeconfig", KUBECONFIG, "apply", "--server-side", "--dry-run=server"]
            + ["--field-manager", "llmops-inference", "-f", path],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert dry_run.returncode == 0, f"{path}: {dry_run.stderr}"
    assert {"Queue", "NodeFeatureRule", monitor_kind, "ConfigMap", "DaemonSet", "Node"} <= kinds
