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


# awx.awx is only for playbooks/awx_configure.yml, which talks to the controller from outside the
# execution environment; the EE carries what the stage playbooks run.
EE_LEAVES_OUT = ("awx.awx",)


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
    assert ee_collections == {k: v for k, v in user_collections.items() if k not in EE_LEAVES_OUT}
    assert user_collections == _load("galaxy.yml")["dependencies"]


def _collection_uses():
    """Text of everything shipped in the collection that can name another collection's content."""
    text = ""
    for folder in ("roles", "playbooks", "plugins", "meta"):
        for base, _dirs, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith((".yml", ".yaml", ".py", ".j2")):
                    with open(os.path.join(base, name)) as handle:
                        text += handle.read()
    return text


def test_every_collection_dependency_is_used():
    """Every dependency is used (community.okd was dropped); ansible.posix came back for doca_ofed's ISO mount."""
    uses = _collection_uses()
    for name in _load("galaxy.yml")["dependencies"]:
        assert re.search(r"\b%s\.[a-z_]+" % re.escape(name), uses), "%s is a dependency nothing uses" % name
    for name in ("ansible.posix", "community.okd", "redhat.openshift"):
        if re.search(r"\b%s\.[a-z_]+" % re.escape(name), uses):
            assert name in _load("galaxy.yml")["dependencies"], "%s is used but not a dependency" % name


def test_every_runtime_python_pin_is_used():
    """kubernetes is kubernetes.core's client; jmespath was pinned for json_query, which no role uses."""
    runtime = set(_pins("requirements.txt")) - {"ansible", "ansible-core"}
    assert runtime == {"kubernetes"}
    assert "json_query" not in _collection_uses()


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


def _versions_env():
    values = {}
    with open(os.path.join(ROOT, "testbed", "versions.env")) as handle:
        for line in handle:
            key, sep, value = line.split("#", 1)[0].strip().partition("=")
            if sep:
                values[key] = value.strip("'\"")
    return values


@pytest.fixture(scope="module")
def ee_context(tmp_path_factory):
    """The build context `make ee-context` writes (scripts/ee_context.sh: fresh tarball, ansible-builder create)."""
    context = tmp_path_factory.mktemp("ee") / "context"
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "ee_context.sh"), str(context)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return context


def _run_lines(containerfile):
    return [line[4:] for line in containerfile.splitlines() if line.startswith("RUN ")]


def test_ansible_builder_creates_a_build_context(ee_context):
    containerfile = (ee_context / "Containerfile").read_text()
    python_reqs = (ee_context / "_build" / "requirements.txt").read_text().split()
    runtime = _pins("requirements.txt")
    assert python_reqs == ["%s==%s" % (n, v) for n, v in runtime.items() if n not in ("ansible", "ansible-core")]
    galaxy = yaml.safe_load((ee_context / "_build" / "requirements.yml").read_text())
    assert sorted(c["name"] for c in galaxy["collections"]) == ["ansible.posix", "community.general", "kubernetes.core"]
    # exactly the tarball of this version, installed where every user finds it, before dropping to uid 1000
    (tarball,) = (ee_context / "_build" / "collection").iterdir()
    assert tarball.name == "llmops-inference-%s.tar.gz" % _load("galaxy.yml")["version"]
    install = next(line for line in _run_lines(containerfile) if "collection install --no-deps" in line)
    assert "-p /usr/share/ansible/collections /tmp/collection/llmops-inference-*.tar.gz" in install
    assert "chmod -R a+rX /usr/share/ansible/collections" in install
    assert containerfile.index(install) < containerfile.index("USER 1000")
    # every RUN line is valid shell
    for line in _run_lines(containerfile):
        check = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True, check=False)
        assert check.returncode == 0, (line, check.stderr)


def test_ee_tools_are_the_test_bed_pins_and_mirrorable(ee_context):
    containerfile = (ee_context / "Containerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", containerfile, re.M))
    versions = _versions_env()
    assert args["HELM_VERSION"] == versions["HELM_VERSION"]
    assert args["KUBECTL_VERSION"] == versions["KUBERNETES_VERSION"]
    for name in ("EE_BASE_IMAGE", "HELM_BASE_URL", "KUBECTL_BASE_URL"):
        assert name in args or re.search(r'^ARG %s="' % name, containerfile, re.M), name


def _tool_step(containerfile):
    return next(line for line in _run_lines(containerfile) if "HELM_BASE_URL" in line)


def _mirror(tmp_path, helm_version, kubectl_version, corrupt=False):
    """A file:// mirror laid out like get.helm.sh and dl.k8s.io. The binaries are stand-in scripts:
    the real helm and kubectl cannot be downloaded here; what is tested is our step (URL layout,
    checksum check, archive member, install path) against the published layout."""
    import hashlib
    import io

    mirror = tmp_path / "mirror"
    (mirror / "helm").mkdir(parents=True)
    helm = b"#!/bin/sh\necho %s\n" % helm_version.encode()
    archive = mirror / "helm" / ("helm-%s-linux-amd64.tar.gz" % helm_version)
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("linux-amd64/helm")
        info.size, info.mode = len(helm), 0o755
        tar.addfile(info, io.BytesIO(helm))
    digest = hashlib.sha256(archive.read_bytes() + (b"x" if corrupt else b"")).hexdigest()
    (mirror / "helm" / (archive.name + ".sha256sum")).write_text("%s  %s\n" % (digest, archive.name))
    kube = mirror / "k8s" / kubectl_version / "bin" / "linux" / "amd64"
    kube.mkdir(parents=True)
    (kube / "kubectl").write_bytes(b"#!/bin/sh\necho kubectl %s\n" % kubectl_version.encode())
    (kube / "kubectl.sha256").write_text(hashlib.sha256((kube / "kubectl").read_bytes()).hexdigest())
    return mirror


def _run_tool_step(ee_context, tmp_path, corrupt=False):
    containerfile = (ee_context / "Containerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", containerfile, re.M))
    mirror = _mirror(tmp_path, args["HELM_VERSION"], args["KUBECTL_VERSION"], corrupt)
    bindir, work = tmp_path / "bin", tmp_path / "work"
    bindir.mkdir()
    work.mkdir()
    step = _tool_step(containerfile).replace("/tmp", str(work)).replace("/usr/local/bin", str(bindir))
    env = dict(
        os.environ,
        HELM_VERSION=args["HELM_VERSION"],
        KUBECTL_VERSION=args["KUBECTL_VERSION"],
        TARGETARCH="amd64",
        HELM_BASE_URL="file://%s/helm" % mirror,
        KUBECTL_BASE_URL="file://%s/k8s" % mirror,
        PATH="%s:%s" % (bindir, os.environ["PATH"]),
    )
    return subprocess.run(["bash", "-c", step], env=env, capture_output=True, text=True, check=False), bindir


def test_ee_tool_step_installs_from_a_mirror(ee_context, tmp_path):
    result, bindir = _run_tool_step(ee_context, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in bindir.iterdir()) == ["helm", "kubectl"]
    assert "v3." in result.stdout and "kubectl v1." in result.stdout


def test_ee_tool_step_refuses_a_bad_checksum(ee_context, tmp_path):
    result, bindir = _run_tool_step(ee_context, tmp_path, corrupt=True)
    assert result.returncode != 0
    assert not (bindir / "helm").exists()


def test_ee_collection_install_step_gives_a_working_collection(ee_context, tmp_path):
    """The Containerfile's install step, run here into a scratch /usr/share/ansible/collections: the
    collection from the tarball alone (no link to this tree) documents its filters and plans a model."""
    containerfile = (ee_context / "Containerfile").read_text()
    install = next(line for line in _run_lines(containerfile) if "collection install --no-deps" in line)
    prefix = tmp_path / "usr-share-ansible-collections"
    step = (
        install.replace("/usr/share/ansible/collections", str(prefix))
        .replace("/tmp/collection/", str(ee_context / "_build" / "collection") + "/")
        .replace("&& rm -rf %s" % (str(ee_context / "_build" / "collection") + "/"), "")
    )
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(prefix), PATH="%s:%s" % (BIN, os.environ["PATH"]))
    result = subprocess.run(["bash", "-c", step], env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = prefix / "ansible_collections" / "llmops" / "inference"
    assert (installed / "plugins" / "filter" / "mirror_image.yml").exists()
    assert not os.path.islink(installed)
    plan = subprocess.run(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            os.path.join(ROOT, "inventories", "local"),
            "llmops.inference.plan",
        ],
        env={k: v for k, v in env.items() if k != "ANSIBLE_CONFIG"},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=str(tmp_path),
    )
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-2000:]
    assert "fits: True" in plan.stdout


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "docs/install.md",
        "docs/testing.md",
        "docs/layout.md",
        "docs/conventions.md",
        "docs/awx.md",
        "docs/first_hour.md",
    ],
)
def test_docs_exist(path):
    assert os.path.getsize(os.path.join(ROOT, path)) > 200
