"""The add-on roles that create objects themselves (no chart), live against the test bed through the real
ansible-playbook: rdma_device_plugin (upstream publishes plain manifests only) and engine_monitoring
(PodMonitor/ServiceMonitor + Grafana dashboard, against the real prometheus-operator CRDs). Per role: install
(changed), the same run again (changed=0), a change (changed, visible on the object), then state absent (gone).
"""

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def read_or_none(read, *args):
    try:
        return read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_rdma_device_plugin(addons, api_client):
    apps = client.AppsV1Api(api_client)
    # The simulated A800 nodes carry NFD's rdma label, so kwok runs one plugin pod on each and the wait is real.
    base = {"rdma_device_plugin_node_selector": {"feature.node.kubernetes.io/rdma.available": "true"}}
    assert read_or_none(apps.read_namespaced_daemon_set, "rdma-shared-dp-ds", "kube-system") is None

    installed, changed = addons("rdma_device_plugin", "install", **base)
    assert installed.returncode == 0, installed.output[-4000:]
    assert changed > 0
    daemonset = apps.read_namespaced_daemon_set("rdma-shared-dp-ds", "kube-system")
    assert daemonset.status.number_ready == 2

    again, changed = addons("rdma_device_plugin", "idempotent", **base)
    assert again.returncode == 0 and changed == 0, again.changed_tasks()

    upgraded, changed = addons("rdma_device_plugin", "upgrade v1.5.2", rdma_device_plugin_version="v1.5.2", **base)
    assert upgraded.returncode == 0 and changed > 0, upgraded.output[-4000:]
    image = apps.read_namespaced_daemon_set("rdma-shared-dp-ds", "kube-system").spec.template.spec.containers[0].image
    assert image.endswith(":v1.5.2")

    removed, changed = addons("rdma_device_plugin", "uninstall", rdma_device_plugin_state="absent", **base)
    assert removed.returncode == 0 and changed > 0, removed.output[-4000:]
    assert read_or_none(apps.read_namespaced_daemon_set, "rdma-shared-dp-ds", "kube-system") is None


@pytest.mark.parametrize("kind", ["PodMonitor", "ServiceMonitor"])
def test_engine_monitoring(addons, api_client, core, namespace, kind):
    custom = client.CustomObjectsApi(api_client)
    plural = kind.lower() + "s"
    base = {
        "engine_monitoring_kind": kind,
        "engine_monitoring_namespace": namespace,
        "engine_monitoring_dashboard_namespace": namespace,
    }

    def monitor():
        return read_or_none(
            custom.get_namespaced_custom_object, "monitoring.coreos.com", "v1", namespace, plural, "llmops-engines"
        )

    installed, changed = addons("engine_monitoring", f"install {kind}", **base)
    assert installed.returncode == 0, installed.output[-4000:]
    assert changed > 0 and monitor() is not None
    dashboard = core.read_namespaced_config_map("llmops-engines-dashboard", namespace)
    assert dashboard.metadata.labels["grafana_dashboard"] == "1"

    again, changed = addons("engine_monitoring", f"idempotent {kind}", **base)
    assert again.returncode == 0 and changed == 0, again.changed_tasks()

    changed_run, changed = addons("engine_monitoring", f"change {kind}", engine_monitoring_interval="30s", **base)
    assert changed_run.returncode == 0 and changed > 0, changed_run.output[-4000:]
    endpoints = monitor()["spec"]["podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"]
    assert endpoints[0]["interval"] == "30s"

    removed, changed = addons("engine_monitoring", f"uninstall {kind}", engine_monitoring_state="absent", **base)
    assert removed.returncode == 0 and changed > 0, removed.output[-4000:]
    assert monitor() is None
