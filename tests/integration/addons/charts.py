"""Package the stand-in charts (tests/integration/charts/) with the real helm and serve them on loopback.

Our machines cannot reach the upstream chart repositories, so the live add-on tests install these charts of
our own, which have the interface the roles rely on (names, values keys, the real upstream CRDs, the objects
the roles wait on); tests/integration/charts/README.md says what each one carries.
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CHARTS = os.path.join(ROOT, "tests", "integration", "charts")
COMMON_TEMPLATE = os.path.join(CHARTS, "_common", "_standin.tpl")
CRDS_DIR = os.environ.get("TESTBED_CRDS_DIR", os.path.join(ROOT, "..", "shared", "crds"))
HELM = os.path.join(ROOT, ".build", "testbed", "bin", "helm")


def _version_tuple(version):
    return tuple(int(part) for part in version.lstrip("v").split("."))


def chart_names():
    return sorted(name for name in os.listdir(CHARTS) if os.path.isfile(os.path.join(CHARTS, name, "Chart.yaml")))


def _stage(name, version, workdir):
    """Copy one chart to workdir/<name>-<version>/<name>, adding the common template and the upstream CRDs."""
    source = os.path.join(CHARTS, name)
    with open(os.path.join(source, "standin.yaml")) as handle:
        spec = yaml.safe_load(handle)
    staged = os.path.join(workdir, "%s-%s" % (name, version), name)
    shutil.copytree(source, staged, ignore=shutil.ignore_patterns("standin.yaml"))
    shutil.copy(COMMON_TEMPLATE, os.path.join(staged, "templates", "_standin.tpl"))
    # Kept as *.gotmpl in the repo (Go templates are not YAML for yamllint/ansible-test); helm wants *.yaml.
    for name in os.listdir(os.path.join(staged, "templates")):
        if name.endswith(".gotmpl"):
            path = os.path.join(staged, "templates", name)
            os.rename(path, path[: -len(".gotmpl")])
    before = spec.get("crds_in_templates_before")
    in_templates = bool(before) and _version_tuple(version) < _version_tuple(before)
    crd_dir = os.path.join(staged, "files", "crds") if in_templates else os.path.join(staged, "crds")
    os.makedirs(crd_dir, exist_ok=True)
    for crd in spec.get("crds") or []:
        shutil.copy(os.path.join(CRDS_DIR, crd), crd_dir)
    if in_templates:
        with open(os.path.join(staged, "templates", "crds.yaml"), "w") as handle:
            handle.write('{{ include "standin.templatedCrds" . }}\n')
    return staged


def package_all(destination, helm=HELM):
    """helm package every stand-in chart at every version of its standin.yaml, then helm repo index.

    Returns {chart name: {version: archive path}}.
    """
    archives = {}
    workdir = os.path.join(destination, ".staging")
    for name in chart_names():
        with open(os.path.join(CHARTS, name, "standin.yaml")) as handle:
            versions = yaml.safe_load(handle)["versions"]
        for version in versions:
            staged = _stage(name, version, workdir)
            app_version = version if version.startswith("v") else "v" + version
            subprocess.run(
                [helm, "package", staged, "--version", version, "--app-version", app_version, "-d", destination],
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            archives.setdefault(name, {})[version] = os.path.join(destination, "%s-%s.tgz" % (name, version))
    shutil.rmtree(workdir)
    subprocess.run([helm, "repo", "index", destination], check=True, capture_output=True, text=True, timeout=60)
    return archives


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


class ChartRepository:
    """index.yaml + archives served by http.server on 127.0.0.1 (a free port), in a daemon thread."""

    def __init__(self, directory):
        handler = functools.partial(_QuietHandler, directory=directory)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def helm(*args, kubeconfig=None):
    """Run the test bed's helm against its kubeconfig (KUBECONFIG of testbed_support unless given)."""
    from testbed_support import KUBECONFIG

    command = [HELM, "--kubeconfig", kubeconfig or KUBECONFIG, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def release(name, namespace):
    """The release as `helm list` sees it (dict with status, revision, app_version), or None."""
    listed = helm("list", "-n", namespace, "--filter", "^%s$" % name, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    return found[0] if found else None
