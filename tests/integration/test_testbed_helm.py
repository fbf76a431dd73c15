"""helm (built by scripts/testbed/build.sh) installs a chart into the test bed.

The chart renders .Capabilities.KubeVersion from the live apiserver, which proves the version
ldflags of our kube-apiserver build (unset, /version says v0.0.0 and charts with a kubeVersion
constraint refuse to install).
"""

import os
import subprocess
import textwrap

import pytest
from testbed_support import KUBECONFIG, ROOT

HELM = os.path.join(ROOT, ".build", "testbed", "bin", "helm")


def versions():
    with open(os.path.join(ROOT, "testbed", "versions.env")) as handle:
        return dict(line.strip().split("=", 1) for line in handle if "=" in line and not line.startswith("#"))


@pytest.fixture()
def chart(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text(
        "apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n", encoding="utf-8"
    )
    (tmp_path / "templates" / "configmap.yaml").write_text(
        textwrap.dedent("""\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}-probe
            data:
              kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
            """),
        encoding="utf-8",
    )
    return tmp_path


def helm(*args):
    return subprocess.run(
        [HELM, "--kubeconfig", KUBECONFIG, *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def test_helm_installs_a_chart_against_the_real_apiserver(core, namespace, chart):
    if not os.path.exists(HELM):
        pytest.skip(f"{HELM} missing (run `make testbed-build`)")
    assert versions()["HELM_VERSION"] in helm("version", "--short")
    helm("install", "probe", str(chart), "--namespace", namespace, "--wait", "--timeout", "60s")
    try:
        configmap = core.read_namespaced_config_map("probe-probe", namespace)
        assert configmap.data["kubeVersion"] == versions()["KUBERNETES_VERSION"]
    finally:
        helm("uninstall", "probe", "--namespace", namespace)
