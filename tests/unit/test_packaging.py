"""Packaging checks: pins agree everywhere, the build tarball is clean, the EE definition builds a context.

These run the real tools (ansible-galaxy, ansible-builder) offline; no container engine is needed for
``ansible-builder create``, which writes the build context the engine would use.
"""

import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _load(name):
    with open(os.path.join(ROOT, name)) as handle:
        return yaml.safe_load(handle)


def _pins(name):
    pins = {}
    with open(os.path.join(ROOT, name)) as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                package, _sep, version = line.partition("==")
                assert version, "%s: %s is not pinned with ==" % (name, line)
                pins[package.lower()] = version
    return pins


def _satisfies(version, spec):
    for clause in spec.split(","):
        match = re.match(r"(>=|<=|==|<|>)(.+)", clause.strip())
        op, bound = match.group(1), LooseVersion(match.group(2))
        have = LooseVersion(version)
        ok = {">=": have >= bound, "<=": have <= bound, "==": have == bound, "<": have < bound, ">": have > bound}[op]
        if not ok:
            return False
    return True


def test_galaxy_metadata():
    galaxy = _load("galaxy.yml")
    assert (galaxy["namespace"], galaxy["name"]) == ("llmops", "inference")
    assert re.match(r"^\d+\.\d+\.\d+$", galaxy["version"])
    assert galaxy["license"] and "license_file" not in galaxy
    runtime = _load("meta/runtime.yml")
    assert runtime["requires_ansible"].startswith(">=")


def test_every_python_pin_is_exact_and_in_the_lock():
    runtime, test = _pins("requirements.txt"), _pins("requirements-test.txt")
    lock = _pins("constraints.txt")
    for package, version in {**runtime, **test}.items():
        assert lock.get(package) == version, "%s==%s differs from constraints.txt (%s)" % (
            package,
            version,
            lock.get(package),
        )


def test_execution_environment_matches_the_pins():
    ee = _load("execution-environment.yml")
    runtime = _pins("requirements.txt")
    deps = ee["dependencies"]
    assert deps["ansible_core"]["package_pip"] == "ansible-core==" + runtime["ansible-core"]
    ee_python = dict(line.split("==") for line in deps["python"])
    expected = {name: version for name, version in runtime.items() if name not in ("ansible", "ansible-core")}
    assert ee_python == expected
    ee_collections = {c["name"]: c["version"] for c in deps["galaxy"]["collections"]}
    user_collections = {c["name"]: c["version"] for c in _load("requirements.yml")["collections"]}
    assert ee_collections == user_collections


def test_collection_dependencies_are_bundled_by_the_pinned_ansible_package():
    """requirements.yml must be satisfiable offline by the `ansible` package we pin."""
    out = subprocess.run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", "list", "--format", "yaml"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": "/nonexistent"},
    ).stdout
    installed = {}
    for collections in yaml.safe_load(out).values():
        for name, info in collections.items():
            installed.setdefault(name, info["version"])
    galaxy_deps = _load("galaxy.yml")["dependencies"]
    for entry in _load("requirements.yml")["collections"]:
        assert entry["name"] in installed, "%s is not bundled by the pinned ansible package" % entry["name"]
        assert _satisfies(installed[entry["name"]], entry["version"]), (entry, installed[entry["name"]])
    for name, spec in galaxy_deps.items():
        assert _satisfies(installed[name], spec), (name, spec, installed[name])


def test_build_tarball_has_no_test_clutter(tmp_path):
    subprocess.run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), ROOT],
        check=True,
        capture_output=True,
    )
    (tarball,) = tmp_path.glob("llmops-inference-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert any(name.startswith("roles/k8s_apply/") for name in names)
    for clutter in ("tests/", ".venv/", ".build/", ".ci/", "scripts/", ".git/", "testbed/", "benchmarks/"):
        assert not any(name.startswith(clutter) for name in names), clutter


def test_ansible_builder_creates_a_build_context(tmp_path):
    dist = os.path.join(ROOT, ".build", "dist")
    os.makedirs(dist, exist_ok=True)
    subprocess.run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", dist, ROOT],
        check=True,
        capture_output=True,
    )
    context = tmp_path / "context"
    result = subprocess.run(
        [os.path.join(BIN, "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(context)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = next(p for p in context.iterdir() if p.name in ("Containerfile", "Dockerfile")).read_text()
    assert "ansible-galaxy collection install /tmp/collection/" in containerfile
    python_reqs = (context / "_build" / "requirements.txt").read_text()
    for name, version in _pins("requirements.txt").items():
        if name not in ("ansible", "ansible-core"):
            assert "%s==%s" % (name, version) in python_reqs


@pytest.mark.parametrize(
    "path", ["README.md", "docs/install.md", "docs/testing.md", "docs/layout.md", "docs/conventions.md"]
)
def test_docs_exist(path):
    assert os.path.getsize(os.path.join(ROOT, path)) > 200
