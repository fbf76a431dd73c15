"""Build the test bed's container images without a registry or a container engine.

Each image (testbed/images/images.json) is one layer: the files of Debian packages (dependencies
resolved by apt as if installing on an empty system, .debs fetched with `apt-get download`,
unpacked with `dpkg-deb -x`; maintainer scripts do not run) plus binaries we built. The result is
a docker-archive tarball (manifest.json + config + layer.tar) that `ctr images import` reads.

Archives are cached under ~/.cache/llmops-inference/testbed/images/<name>-<key>.tar, where the key
hashes the image definition, the exact package versions, the binaries and this script: an
unchanged image is not rebuilt. An image with ``tag_version_of: <package>`` is tagged with that
package's version; the build refuses a tag that does not end with the version apt resolved, so a tag
never names another version than what is inside. Usage: image_build.py NAME... (prints one archive path per line).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
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
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def build_layer(rootfs: Path, links: dict[str, str]) -> bytes:
    """A reproducible tar of rootfs: sorted entries, owner root, fixed mtime for what we added."""
    for link, target in links.items():
        path = rootfs / link.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
    buf = io.BytesIO()

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = min(info.mtime, 1700000000)
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = Path(dirpath, name)
                arcname = str(full.relative_to(rootfs))
                tar.add(full, arcname=arcname, recursive=False, filter=normalise)
    return buf.getvalue()


def build(name: str, spec: dict) -> Path:
    debs = resolve_debs(spec.get("debs", []))
    if spec.get("tag_version_of"):
        version = dict(debs).get(spec["tag_version_of"])
        wrong = [tag for tag in spec["tags"] if version is None or not tag.endswith(":" + version)]
        if wrong:
            package = spec["tag_version_of"]
            raise SystemExit(f"image {name}: tags {wrong} do not name {package} {version}, the version apt resolved")
    bins = {BIN / src: dest for src, dest in spec.get("bins", {}).items()}
    for src in bins:
        if not src.exists():
            raise SystemExit(f"image {name}: {src} missing (run scripts/testbed/build.sh node)")
    files = repo_files(spec.get("files", {}))
    key_src = json.dumps(
        {"spec": spec, "debs": debs, "bins": {dest: file_sha(src.resolve()) for src, dest in bins.items()},
         "files": {dest: file_sha(src) for src, dest in files.items()}, "script": file_sha(Path(__file__))},
        sort_keys=True,
    )  # fmt: skip
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    out = CACHE / "images" / f"{name}-{key}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"image-{name}-") as tmp:
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
        layer = build_layer(rootfs, spec.get("links", {}))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
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
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": spec["tags"], "Layers": [layer_name]}]).encode()
    tmp_out = out.with_suffix(f".tmp{os.getpid()}")
    with tarfile.open(tmp_out, "w") as tar:
        for arcname, data in ((config_name, config_bytes), (layer_name, layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    tmp_out.rename(out)
    return out


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
