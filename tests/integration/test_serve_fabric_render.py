"""Real ansible-playbook runs, render mode, of every example inventory: the cluster add-ons that serving leans on
(the RDMA device plugin, the engine monitors) and the serve stage, written into one folder per inventory, then
read as a real cluster would (issue 10: items 4, 5, 6, 7, 8, 12 and the Medium exposure/monitoring items).

- every requested rdma/* resource is one the rendered k8s-rdma-shared-dev-plugin config announces (RoCE is its own
  resource with linkTypes [ether]);
- the socket interface follows the network mode (eth0 on the pod network, never under hostNetwork), NCCL_IB_HCA
  is exact-match;
- Ingress/Route forward /v1 only; ingress-nginx streams (proxy-buffering off);
- NetworkPolicy on by default; a ServiceMonitor selects labels a rendered Service carries, and no engine is both in
  a PodMonitor and a ServiceMonitor;
- OpenShift engine pods get their own SCC (never privileged) and no runtime pip install; KServe's S3 annotations
  are on the credentials Secret; Ascend mounts npu-smi from /usr/local/sbin and sets the vllm-ascend env.
Plans are the recorded parallelism_plan outputs in fixtures/plans/.
"""

import json
import os

import pytest
import yaml
from render_helpers import ROOT, rendered, run_render, validate_custom_resources

INVENTORIES = (
    "local",
    "deepseek-r1-2x8-a800-sglang",
    "distill-1gpu",
    "qwen3-235b-vllm-tp8",
    "qwen3-235b-vllm-2node-ray",
    "ascend-910b",
    "openshift-ai-kserve",
)
SCC_CRD = "openshift-api/0000_03_config-operator_01_securitycontextconstraints.crd.yaml"


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    results = {}
    for inventory in INVENTORIES:
        folder = str(tmp_path_factory.mktemp(inventory))
        addons = run_render(
            inventory,
            folder,
            "--tags",
            "rdma_device_plugin,engine_monitoring",
            "-e",
            "engine_monitoring_dashboard_enabled=false",
            plan=False,
            playbook="cluster_addons.yml",
        )
        assert addons.returncode == 0, inventory + addons.stdout[-3000:] + addons.stderr[-2000:]
        serve = run_render(inventory, folder, "-e", "llmops_apply_mode=render")
        assert serve.returncode == 0, inventory + serve.stdout[-4000:] + serve.stderr[-2000:]
        results[inventory] = rendered(folder)
    return results


def _pod_templates(objects):
    for kind in ("Deployment", "StatefulSet"):
        for obj in objects.get(kind, []):
            if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "inference-server":
                yield obj["spec"]["template"]
    for lws in objects.get("LeaderWorkerSet", []):
        template = lws["spec"]["leaderWorkerTemplate"]
        yield template["leaderTemplate"]
        yield template["workerTemplate"]


def _engine(template):
    return template["spec"]["containers"][0]


def _env(container):
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def _announced_rdma(objects):
    names = {}
    for config_map in objects.get("ConfigMap", []):
        if "config.json" in config_map.get("data", {}) and config_map["metadata"]["name"].startswith("rdma"):
            for entry in json.loads(config_map["data"]["config.json"])["configList"]:
                prefix = entry.get("resourcePrefix") or "rdma"
                names["%s/%s" % (prefix, entry["resourceName"])] = entry["selectors"].get("linkTypes", [])
    return names


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_requested_rdma_resources_are_announced_by_the_rendered_device_plugin(renders, inventory):
    objects = renders[inventory]
    announced = _announced_rdma(objects)
    for template in _pod_templates(objects):
        requested = [name for name in _engine(template)["resources"]["limits"] if name.startswith("rdma/")]
        for name in requested:
            # An inventory that turns the plugin off (the test bed advertises rdma/ib itself) is checked against
            # node allocatable in apply mode instead.
            if announced:
                assert name in announced, "%s requests %s; the plugin announces %s" % (inventory, name, announced)
    if announced:
        assert announced.get("rdma/roce") == ["ether"] and announced.get("rdma/ib") == ["infiniband"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_socket_interface_matches_the_network_mode(renders, inventory):
    with open(os.path.join(ROOT, "inventories", inventory, "group_vars", "all.yml")) as handle:
        host_ifname = yaml.safe_load(handle).get("inference_server_host_ifname")
    for template in _pod_templates(renders[inventory]):
        env = _env(_engine(template))
        host_network = template["spec"].get("hostNetwork", False)
        # The pod network's interface is eth0; under hostNetwork it is the host NIC the inventory names.
        expected = host_ifname if host_network else "eth0"
        assert expected, "%s: hostNetwork without inference_server_host_ifname" % inventory
        for name in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "HCCL_SOCKET_IFNAME"):
            if name in env:
                assert env[name] == expected, (inventory, name, env[name])
        if env.get("NCCL_IB_HCA"):
            assert env["NCCL_IB_HCA"].startswith(("=", "^")), (inventory, env["NCCL_IB_HCA"])


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_exposure_forwards_only_the_openai_api(renders, inventory):
    objects = renders[inventory]
    api_services = {
        obj["metadata"]["name"]
        for obj in objects.get("Service", [])
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "inference-server"
    }
    for ingress in objects.get("Ingress", []):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                if path["backend"]["service"]["name"] in api_services:
                    assert path["path"] == "/v1", (inventory, path)
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    for route in objects.get("Route", []):
        if route["spec"]["to"]["name"] in api_services:
            assert route["spec"]["path"] == "/v1", inventory


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_network_policy_and_monitors(renders, inventory):
    objects = renders[inventory]
    policies = objects.get("NetworkPolicy", [])
    assert len(policies) == 1 and policies[0]["spec"]["policyTypes"] == ["Ingress"]
    services = objects.get("Service", [])
    for monitor in objects.get("ServiceMonitor", []):
        selector = monitor["spec"]["selector"]
        matched = [
            svc
            for svc in services
            if all(svc["metadata"]["labels"].get(k) == v for k, v in selector.get("matchLabels", {}).items())
            and all(
                svc["metadata"]["labels"].get(e["key"]) in e["values"]
                for e in selector.get("matchExpressions", [])
                if e["operator"] == "In"
            )
        ]
        assert matched, "%s: ServiceMonitor %s selects no rendered Service" % (inventory, monitor["metadata"]["name"])
    # Never both: a PodMonitor over the engine pods and a ServiceMonitor over the same pods' Service.
    assert not (objects.get("PodMonitor") and objects.get("ServiceMonitor")), inventory


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_openshift_engine_pods_get_their_own_scc_and_no_pip_install(renders, inventory):
    objects = renders[inventory]
    for scc in objects.get("SecurityContextConstraints", []):
        assert scc["allowPrivilegedContainer"] is False
    templates = list(_pod_templates(objects))
    for template in templates:
        for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            assert _env(container).get("LLMOPS_PIP_INSTALL", "false") == "false", inventory
    for job in objects.get("Job", []):
        for container in job["spec"]["template"]["spec"]["containers"]:
            assert _env(container).get("LLMOPS_PIP_INSTALL", "false") == "false", inventory
    if inventory == "qwen3-235b-vllm-2node-ray":
        import render_helpers

        (scc,) = objects["SecurityContextConstraints"]
        schema = render_helpers.crd_schema(SCC_CRD, "v1")
        assert render_helpers.pruned_fields(scc, schema) == []
        assert scc["allowedCapabilities"] == ["IPC_LOCK"] and scc["allowHostNetwork"] is True
        account = objects["ServiceAccount"][0]["metadata"]["name"]
        assert all(t["spec"]["serviceAccountName"] == account for t in templates)
        assert objects["RoleBinding"][0]["subjects"][0]["name"] == account


def test_kserve_s3_annotations_are_on_the_credentials_secret(renders):
    objects = renders["openshift-ai-kserve"]
    validate_custom_resources(objects)
    (secret,) = [s for s in objects["Secret"] if s["metadata"]["name"] == "minio-model-reader"]
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == (
        "minio-svc.minio-store.svc.cluster.local:9000"
    )
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "0"
    assert "data" not in secret and "stringData" not in secret


def test_ascend_mounts_what_exists_and_sets_the_vllm_ascend_env(renders):
    objects = renders["ascend-910b"]
    for template in _pod_templates(objects):
        paths = {v["hostPath"]["path"] for v in template["spec"]["volumes"] if "hostPath" in v}
        assert "/usr/local/sbin/npu-smi" in paths and "/usr/local/bin/npu-smi" not in paths
        env = _env(_engine(template))
        assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
        assert env["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"] == "1"
        assert env["HCCL_IF_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert template["spec"]["hostNetwork"] is True
        # Seed 003's hosts: run_cluster.sh --network host with GLOO_SOCKET_IFNAME=eth0, their host NIC.
        assert env["GLOO_SOCKET_IFNAME"] == env["TP_SOCKET_IFNAME"] == env["HCCL_SOCKET_IFNAME"] == "eth0"
