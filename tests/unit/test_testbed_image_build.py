"""scripts/testbed/image_build.py writes docker archives that `ctr images import` reads.

Checks the archive format on an image made of a file of ours (no apt, no network): manifest.json
names the config and the layer, the config's diff_id is the layer's sha256, the tags are kept, and
an unchanged definition is served from the cache. The live path (Debian packages, import into the
real nodes' containerd, a pod running it) is tests/integration/test_testbed_real_nodes.py.
"""

import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "testbed" / "image_build.py"


@pytest.fixture()
def image_build(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("image_build", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    monkeypatch.setattr(module, "BIN", tmp_path / "bin")
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    return module


def test_archive_is_a_docker_archive_with_matching_digests(image_build):
    spec = {"tags": ["llmops.invalid/testbed/hello:1"], "bins": {"hello": "/usr/bin/hello"}, "cmd": ["hello"]}
    archive = image_build.build("hello", spec)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["llmops.invalid/testbed/hello:1"]
        config_bytes = tar.extractfile(manifest[0]["Config"]).read()
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()
    config = json.loads(config_bytes)
    assert manifest[0]["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Cmd"] == ["hello"] and config["os"] == "linux"
    with tarfile.open(fileobj=io.BytesIO(layer)) as rootfs:
        hello = rootfs.getmember("usr/bin/hello")
        assert hello.mode & 0o111 and hello.uid == 0
        assert rootfs.getmember("tmp").mode & 0o1777 == 0o1777


def test_unchanged_image_comes_from_the_cache_and_a_change_rebuilds(image_build):
    spec = {"tags": ["t:1"], "bins": {"hello": "/hello"}}
    first = image_build.build("hello", spec)
    assert image_build.build("hello", spec) == first
    (image_build.BIN / "hello").write_text("#!/bin/sh\necho changed\n")
    assert image_build.build("hello", spec) != first


def test_missing_binary_is_a_clear_error(image_build):
    with pytest.raises(SystemExit, match="missing"):
        image_build.build("x", {"tags": ["x:1"], "bins": {"nope": "/nope"}})


def _wheel(folder: Path, name: str, version: str, script: str | None = None) -> Path:
    """A real (tiny) pure-Python wheel: what pip installs from PyPI, made here so the test needs no network."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {f"{name.replace('-', '_')}_pkg/__init__.py": "VALUE = 42\n"}
    files[f"{dist}.dist-info/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{dist}.dist-info/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if script:
        files[f"{dist}.dist-info/entry_points.txt"] = (
            f"[console_scripts]\n{script} = {name.replace('-', '_')}_pkg:VALUE\n"
        )
    record = "".join(f"{path},,\n" for path in files) + f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for arcname, text in files.items():
            whl.writestr(arcname, text)
    return path


def test_wheels_install_into_the_image_python_with_scripts_and_a_dist_alias(image_build, tmp_path):
    """Real pip (--no-index from the wheel folder, --target the image's dist-packages) installs the listed
    wheels; console scripts move to /usr/local/bin with the image's python in their shebang; a dist alias
    is a metadata-only distribution importlib.metadata finds under the other name."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "demo-cpu", "1.2.0", script="demo")
    rootfs = tmp_path / "rootfs"
    spec = {
        "nodeps_wheels": ["demo-cpu==1.2.0"],
        "dist_aliases": [{"name": "demo", "version": "1.2.0+cpu", "of": "demo-cpu"}],
    }
    image_build.install_wheels(rootfs, spec, wheels)
    site = rootfs / "usr/local/lib/python3.11/dist-packages"
    assert (site / "demo_cpu_pkg" / "__init__.py").exists()
    script = (rootfs / "usr/local/bin/demo").read_text()
    assert script.startswith("#!/usr/bin/python3.11\n") and "demo_cpu_pkg" in script
    assert not (site / "bin").exists()
    dists = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(site)])}
    assert dists == {"demo-cpu": "1.2.0", "demo": "1.2.0+cpu"}
    with pytest.raises(SystemExit, match="not installed"):
        image_build.write_dist_alias(site, {"name": "x", "version": "1", "of": "absent"})


def test_wheels_must_be_pinned(image_build):
    with pytest.raises(SystemExit, match="pin it"):
        image_build.fetch_wheels({"wheels": ["torch"]})


def test_layer_is_streamed_to_disk_with_its_digest(image_build, tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr").mkdir(parents=True)
    (rootfs / "usr" / "big").write_bytes(b"x" * (3 << 20))
    layer = tmp_path / "layer.tar"
    diff_id = image_build.build_layer(rootfs, {"/bin/sh": "dash"}, layer)
    assert diff_id == "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()
    with tarfile.open(layer) as tar:
        assert tar.getmember("bin/sh").linkname == "dash"
        assert tar.getmember("usr/big").size == 3 << 20


def test_gzip_layer_keeps_the_uncompressed_digest_as_diff_id(image_build, tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr").mkdir(parents=True)
    (rootfs / "usr" / "data").write_bytes(b"y" * 100000)
    plain, packed = tmp_path / "plain.tar", tmp_path / "packed.tar"
    diff_id = image_build.build_layer(rootfs, {}, plain)
    assert image_build.build_layer(rootfs, {}, packed, gzip_level=1) == diff_id
    assert packed.read_bytes()[:2] == b"\x1f\x8b" and packed.stat().st_size < plain.stat().st_size
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert image_build.build_layer(rootfs, {}, tmp_path / "again.tar", gzip_level=1) == diff_id
    assert (tmp_path / "again.tar").read_bytes() == packed.read_bytes()  # reproducible (gzip mtime 0)
