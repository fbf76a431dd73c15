"""The LeaderWorkerSet CRD upgrade guard, live (kubernetes-sigs/lws#880).

Up to 0.7 the LWS chart rendered its CRD from templates/, so the CRD belongs to the release; from 0.8 the CRD is in
crds/, and a plain `helm upgrade` across that line deletes the CRD and every LeaderWorkerSet with it. Our stand-in
lws chart (tests/integration/charts/lws: the upstream chart repositories are unreachable here) is packaged at 0.7.0
with the real upstream CRD in templates/ and at 0.10.0 with it in crds/, and the real ansible-playbook runs the
leaderworkerset role against the test bed:
- a 0.7.0 chart over the test bed's CRD (installed outside Helm, like manifests.yaml) is refused, nothing installed;
- over a Helm-owned CRD with a LeaderWorkerSet in it, policy `refuse` stops with the kubectl command to run;
- policy `safe` says it takes the safe path, keeps the CRD, upgrades, and the LeaderWorkerSet survives.
The test bed's CRD is restored afterwards (upstream file, no Helm metadata), so other tests find it as before.
"""

import os
import subprocess

import pytest
from charts import CRDS_DIR, release
from kubernetes import client
from kubernetes.client.rest import ApiException
from testbed_support import KUBECONFIG, PAUSE_IMAGE, ROOT, wait_for

CRD = "leaderworkersets.leaderworkerset.x-k8s.io"
KUBECTL = os.path.join(ROOT, ".build", "testbed", "bin", "kubectl")
HELM_METADATA = {
    "metadata": {
        "labels": {"app.kubernetes.io/managed-by": None},
        "annotations": {
            "meta.helm.sh/release-name": None,
            "meta.helm.sh/release-namespace": None,
            "helm.sh/resource-policy": None,
        },
    }
}


def crd(extensions):
    try:
        return extensions.read_custom_resource_definition(CRD)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
def extensions(api_client):
    return client.ApiextensionsV1Api(api_client)


@pytest.fixture
def testbed_crd(extensions):
    """Hand the CRD back as the test bed installed it, whatever the test did to it."""
    yield
    if crd(extensions) is not None:
        extensions.patch_custom_resource_definition(CRD, HELM_METADATA)
    upstream = os.path.join(CRDS_DIR, "lws", "leaderworkerset.x-k8s.io_leaderworkersets.yaml")
    subprocess.run(
        [KUBECTL, "--kubeconfig", KUBECONFIG, "apply", "--server-side", "--force-conflicts", "-f", upstream],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        [KUBECTL, "--kubeconfig", KUBECONFIG, "wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s"],
        check=True,
        capture_output=True,
        timeout=90,
    )


def lws_vars(chart_repo, version, **extra):
    chart_version = version.lstrip("v")
    return dict(
        leaderworkerset_version=version,
        leaderworkerset_chart_source="local",
        leaderworkerset_chart_archive=chart_repo.archives["lws"][chart_version],
        **extra,
    )


def survivor(namespace):
    template = {"spec": {"containers": [{"name": "engine", "image": PAUSE_IMAGE}]}}
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "survivor", "namespace": namespace},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": template}},
    }


def test_lws_upgrade_across_the_crd_move(request, addons, chart_repo, api_client, extensions, namespace, testbed_crd):
    custom = client.CustomObjectsApi(api_client)
    assert release("lws", "lws-system") is None, "lws left over from an earlier run"
    request.addfinalizer(
        lambda: release("lws", "lws-system") and addons("leaderworkerset", "cleanup", leaderworkerset_state="absent")
    )

    # The test bed's CRD came from a plain apply (like manifests.yaml): a 0.7 chart would fight over it.
    refused = addons("leaderworkerset", "v0.7 over a non-Helm CRD", **lws_vars(chart_repo, "v0.7.0"))[0]
    assert refused.returncode != 0
    assert "already exists outside Helm" in refused.output and "nothing was changed" in refused.output
    assert release("lws", "lws-system") is None

    extensions.delete_custom_resource_definition(CRD)
    wait_for(lambda: crd(extensions) is None, timeout=60, what=f"CRD {CRD} deleted")
    installed = addons("leaderworkerset", "install v0.7.0", **lws_vars(chart_repo, "v0.7.0"))[0]
    assert installed.returncode == 0, installed.output[-4000:]
    owned = crd(extensions)
    assert owned.metadata.annotations["meta.helm.sh/release-name"] == "lws"  # the CRD is part of the release now
    created = custom.create_namespaced_custom_object(
        "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", survivor(namespace)
    )

    refused = addons(
        "leaderworkerset",
        "refuse v0.10.0",
        **lws_vars(chart_repo, "v0.10.0", leaderworkerset_crd_upgrade_policy="refuse"),
    )[0]
    assert refused.returncode != 0
    assert "refusing to upgrade LWS v0.7.0 -> v0.10.0" in refused.output
    assert f"kubectl annotate crd {CRD} helm.sh/resource-policy=keep" in refused.output
    assert release("lws", "lws-system")["app_version"] == "v0.7.0"
    assert "helm.sh/resource-policy" not in (crd(extensions).metadata.annotations or {})

    upgraded, changed = addons("leaderworkerset", "safe upgrade v0.7.0 -> v0.10.0", **lws_vars(chart_repo, "v0.10.0"))
    assert upgraded.returncode == 0, upgraded.output[-4000:]
    assert "taking the safe path" in upgraded.output and changed > 0
    assert release("lws", "lws-system")["app_version"] == "v0.10.0"
    kept = crd(extensions)
    assert kept.metadata.uid == owned.metadata.uid  # never deleted and re-created
    assert kept.metadata.annotations["helm.sh/resource-policy"] == "keep"
    still_there = custom.get_namespaced_custom_object(
        "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", "survivor"
    )
    assert still_there["metadata"]["uid"] == created["metadata"]["uid"]
