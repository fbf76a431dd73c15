"""scripts/testbed/image_build.py writes docker archives that `ctr images import` reads.

Checks the archive format on an image made of a file of ours (no apt, no network): manifest.json
names the config and the layer, the config's diff_id is the layer's sha256, the tags are kept, and
an unchanged definition is served from the cache. The live path (Debian packages, import into the
real nodes' containerd, a pod running it) is tests/integration/test_testbed_real_nodes.py.
"""

import hashlib
import importlib.util
import io
import json
import tarfile
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
