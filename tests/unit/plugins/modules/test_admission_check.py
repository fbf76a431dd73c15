"""admission_check without a cluster: bad manifests and an unreachable API end in a message, never a traceback.
What the API server admits or refuses is tested live (tests/integration/test_admission_live.py)."""

import pytest

from ansible_collections.llmops.inference.plugins.modules import admission_check

DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "llmops"},
    "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}}},
}

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_a_bad_quantity_is_refused_before_any_api_call(run, tmp_path):
    bad = {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": []}}}}
    bad["spec"]["template"]["spec"]["containers"] = [{"resources": {"limits": {"memory": "lots"}}}]
    result = run(admission_check.main, {"objects": [bad], "kubeconfig": str(tmp_path / "missing")})
    assert result["failed"] and result["msg"] == "admission_check: not a Kubernetes quantity: 'lots'"


@pytest.mark.parametrize("write", [True, False])
def test_an_unreachable_api_or_missing_kubeconfig_is_a_message(run, tmp_path, write):
    path = tmp_path / "kubeconfig"
    if write:
        path.write_text(KUBECONFIG)
    result = run(admission_check.main, {"objects": [DEPLOYMENT], "kubeconfig": str(path)}, check_mode=True)
    assert result["failed"] and result["msg"].startswith("admission_check: cannot reach the Kubernetes API: ")
    assert "not-a-secret" not in result["msg"]


def test_no_objects_need_no_api(run, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    result = run(admission_check.main, {"objects": [], "kubeconfig": str(path)})
    assert not result.get("failed") and result["pods"] == [] and result["problems"] == []
