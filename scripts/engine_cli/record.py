"""Record an engine's real CLI as a JSON schema: tests/unit/fixtures/engine_cli/<engine>-<version>.json.

    python scripts/engine_cli/record.py sglang 0.5.23      (or: make engine-cli ENGINE=sglang VERSION=0.5.23)

What it does, and why it is shaped so:
- a throwaway virtualenv per version under ~/.cache/llmops-inference/engine-cli/<engine>-<version>
  (never in the repository or CI: a full engine install is several GB with CUDA torch);
- ``pip install --no-deps <engine>==<version>``, then only the packages the import of the argument parser
  really needs: dump_parser.py is run, and each ``ModuleNotFoundError`` installs that one module's package.
  Each installed package is printed and kept in the schema (``installed``);
- torch: both parsers import it (SGLang's utils, vLLM's config), and PyPI serves only the CUDA build for
  x86_64 Linux, whose import loads libcudart/cublas/cudnn from the nvidia-* wheels. It is installed once,
  with those wheels, into a shared ``torch-base`` venv that every engine venv sees through a .pth file,
  so only the first recording pays for it (about 3 GB);
- the real parser is imported and dumped (dump_parser.py): SGLang's ServerArgs.add_cli_args, vLLM's
  ``vllm serve`` parser (make_arg_parser). Nothing is hand-written: the schema is what the engine accepts.

It prints the time the recording took (target: under 10 minutes on the 2-core machine).

    python scripts/engine_cli/record.py vllm 0.32.0 --site ROOTFS/usr/local/lib/python3.11/dist-packages

records from an engine already installed in a folder instead (the test bed's vllm-cpu image, unpacked):
no venv, nothing installed; the parser is the one the image runs.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "unit", "fixtures", "engine_cli")
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "llmops-inference", "engine-cli")
DUMPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dump_parser.py")
ENGINES = ("sglang", "vllm", "vllm-ascend")
MAX_ROUNDS = 60
# import name -> PyPI name, where they differ
PACKAGES = {
    "yaml": "pyyaml",
    "PIL": "pillow",
    "google": "protobuf",
    "zmq": "pyzmq",
    "cv2": "opencv-python-headless",
    "sklearn": "scikit-learn",
    "dateutil": "python-dateutil",
    "attr": "attrs",
    "jwt": "pyjwt",
    "multipart": "python-multipart",
    "dotenv": "python-dotenv",
    "cpuinfo": "py-cpuinfo",
    "grpc": "grpcio",
    "llguidance": "llguidance",
    "blake3": "blake3",
    "cachetools": "cachetools",
    "msgspec": "msgspec",
    "gguf": "gguf",
    "openai_harmony": "openai-harmony",
    "mistral_common": "mistral-common",
    "sentencepiece": "sentencepiece",
    "partial_json_parser": "partial-json-parser",
    "compressed_tensors": "compressed-tensors",
    "depyf": "depyf",
    "cbor2": "cbor2",
    "xgrammar": "xgrammar",
    "outlines_core": "outlines-core",
    "lark": "lark",
    "setproctitle": "setproctitle",
    "pybase64": "pybase64",
    "einops": "einops",
    "diskcache": "diskcache",
    "prometheus_fastapi_instrumentator": "prometheus-fastapi-instrumentator",
    "opentelemetry": "opentelemetry-api",
    "huggingface_hub": "huggingface-hub",
    "tokenizers": "tokenizers",
    "lmformatenforcer": "lm-format-enforcer",
    "flashinfer": "flashinfer-python",
    "pythonjsonlogger": "python-json-logger",
    "model_hosting_container_standards": "model-hosting-container-standards",
    "tiktoken": "tiktoken",
}
# installed without their dependencies: they pull GPU runtimes the parser never loads
NO_DEPS = {"torch", "torchvision", "torchaudio", "triton", "xformers", "flashinfer-python", "sgl-kernel", "ray"}


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def pip(venv, *args):
    result = run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet", *args])
    if result.returncode:
        raise SystemExit("pip install %s failed:\n%s" % (" ".join(args), result.stderr[-3000:]))


def missing_module(stderr):
    match = re.search(r"No module named '([^']+)'", stderr)
    return match.group(1).split(".")[0] if match else None


TORCH_BASE = os.path.join(CACHE, "torch-base")
IMPORTS = {value: key for key, value in PACKAGES.items()}


def _seed_packages(engine, out_dir):
    """Packages the newest recorded schema of ``engine`` had to install (none for a first recording)."""
    best = None
    for name in os.listdir(out_dir) if os.path.isdir(out_dir) else []:
        if name.startswith(engine + "-") and name.endswith(".json"):
            with open(os.path.join(out_dir, name)) as handle:
                schema = json.load(handle)
            if best is None or name > best[0]:
                best = (name, schema)
    if best is None:
        return []
    return [line.split("==")[0] for line in best[1].get("installed", []) if line.split("==")[0] != engine]


def _link_torch_base(venv, started):
    """Make the shared torch venv's site-packages visible (after the engine venv's own) through a .pth."""
    base_python = os.path.join(TORCH_BASE, "bin", "python")
    if not os.path.exists(base_python):
        run([sys.executable, "-m", "venv", TORCH_BASE]).check_returncode()
    if run([base_python, "-c", "import torch"]).returncode:
        print("  %6.0fs  installing torch (CUDA build, once) into %s" % (time.monotonic() - started, TORCH_BASE))
        pip(TORCH_BASE, "torch")
    site = run([base_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    own = run([os.path.join(venv, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    with open(os.path.join(own.stdout.strip(), "llmops_torch_base.pth"), "w") as handle:
        handle.write(site + "\n")


def record(engine, version, out_dir, keep_going=True):
    started = time.monotonic()
    package = engine
    venv = os.path.join(CACHE, "%s-%s" % (engine, version))
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        run([sys.executable, "-m", "venv", venv]).check_returncode()
    installed = []
    _link_torch_base(venv, started)
    if run([python, "-c", "import importlib.metadata as m; m.version(%r)" % package]).returncode:
        pip(venv, "--no-deps", "%s==%s" % (package, version))
        installed.append("%s==%s (no deps)" % (package, version))
    seed = _seed_packages(engine, out_dir)
    if (
        seed
        and run(
            [python, "-c", "import %s" % ", ".join(IMPORTS.get(name, name.replace("-", "_")) for name in seed)]
        ).returncode
    ):
        # what the last recorded version's parser needed, in one pip run (each import round costs a torch import)
        print("  %6.0fs  installing what the last recording needed: %s" % (time.monotonic() - started, " ".join(seed)))
        pip(venv, *seed)
        installed += seed
    dumper_engine = "vllm" if engine.startswith("vllm") else engine
    env = dict(os.environ, LLMOPS_INSTALL_MISSING=json.dumps({"names": PACKAGES, "no_deps": sorted(NO_DEPS)}))
    for _round in range(MAX_ROUNDS):
        result = run([python, DUMPER, dumper_engine], env=env)
        for line in result.stderr.splitlines():
            if line.startswith("parser import needs "):
                print("  %6.0fs  %s" % (time.monotonic() - started, line))
                installed.append(line.rsplit(" ", 1)[-1])
        if result.returncode == 0:
            break
        module = missing_module(result.stderr)
        if not module or not keep_going or module in (engine, dumper_engine):
            raise SystemExit("the %s %s parser does not import:\n%s" % (engine, version, result.stderr[-4000:]))
        name = PACKAGES.get(module, module.replace("_", "-"))
        print("  %6.0fs  parser import needs %s: installing %s" % (time.monotonic() - started, module, name))
        if name in NO_DEPS:
            pip(venv, "--no-deps", name)
        else:
            pip(venv, name)
        installed.append(name)
    else:
        raise SystemExit("gave up after %d missing modules" % MAX_ROUNDS)
    schema = json.loads(result.stdout)
    schema["engine"] = engine
    schema["version"] = version
    schema["recorded_with"] = "scripts/engine_cli/record.py (pip install --no-deps %s==%s + parser imports)" % (
        package,
        version,
    )
    # what the engine venv holds besides pip (torch comes from the shared torch-base venv)
    own_site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    freeze = run([python, "-m", "pip", "list", "--format=freeze", "--path", own_site, "--exclude", "pip"])
    schema["installed"] = sorted(
        line for line in freeze.stdout.splitlines() if line and not line.startswith(("setuptools", "llmops"))
    )
    schema["torch"] = run([python, "-c", "import torch; print(torch.__version__)"]).stdout.strip()
    return write_schema(schema, out_dir, started)


def write_schema(schema, out_dir, started):
    """Write <engine>-<version>.json into out_dir; returns (path, seconds since started)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "%s-%s.json" % (schema["engine"], schema["version"]))
    with open(path, "w") as handle:
        json.dump(schema, handle, indent=1, sort_keys=True)
        handle.write("\n")
    elapsed = time.monotonic() - started
    engine, version, count = schema["engine"], schema["version"], len(schema["options"])
    print("recorded %s %s: %d options -> %s in %.0f s" % (engine, version, count, path, elapsed))
    return path, elapsed


def record_site(engine, version, out_dir, site):
    """Record from the packages installed in ``site`` (an image's dist-packages), run by this Python."""
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=site, PYTHONNOUSERSITE="1")
    got = run([sys.executable, "-c", "import importlib.metadata as m; print(m.version(%r))" % engine], env=env)
    if got.returncode or got.stdout.strip().split("+")[0] != version:
        raise SystemExit("%s in %s is %r, not %s" % (engine, site, got.stdout.strip() or got.stderr[-500:], version))
    result = run([sys.executable, DUMPER, "vllm" if engine.startswith("vllm") else engine], env=env)
    if result.returncode:
        raise SystemExit("the %s %s parser does not import:\n%s" % (engine, version, result.stderr[-4000:]))
    schema = json.loads(result.stdout)
    schema["engine"] = engine
    schema["version"] = version
    freeze = run([sys.executable, "-m", "pip", "list", "--format=freeze", "--path", site], env=env)
    schema["installed"] = sorted(line for line in freeze.stdout.splitlines() if line)
    schema["recorded_with"] = "scripts/engine_cli/record.py --site (%s %s as installed in an image)" % (
        engine,
        got.stdout.strip(),
    )
    schema["torch"] = run([sys.executable, "-c", "import torch; print(torch.__version__)"], env=env).stdout.strip()
    return write_schema(schema, out_dir, started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("version")
    parser.add_argument("--out", default=FIXTURES, help="folder of the schemas (default: %(default)s)")
    parser.add_argument("--site", help="record from the engine installed in this site-packages folder")
    args = parser.parse_args()
    if args.site:
        record_site(args.engine, args.version, args.out, args.site)
    else:
        record(args.engine, args.version, args.out)


if __name__ == "__main__":
    main()
