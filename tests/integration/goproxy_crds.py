"""CRDs that ../shared/crds does not carry (KEDA, the Gateway API), fetched at test time from the Go module
proxy (the module zips hold each project's config/crd), pinned by version and by the zip's sha256, into a
git-ignored cache (~/.cache/llmops-inference/goproxy, or LLMOPS_GOPROXY_CACHE). Nothing fetched is committed.

Imported by name (``from goproxy_crds import ...``): pytest puts this folder on sys.path.
"""

import hashlib
import os
import urllib.request
import zipfile

import yaml

GOPROXY = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].rstrip("/")
CACHE = os.environ.get("LLMOPS_GOPROXY_CACHE", os.path.expanduser("~/.cache/llmops-inference/goproxy"))
# name -> (module path, version, sha256 of the module zip, CRD folder inside it)
MODULES = {
    "keda": (
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        "74b59fe16144250748b716d6dc8789dee52d26164daab732145bed60456013a4",
        "config/crd/bases",
    ),
    "gateway-api": (
        "sigs.k8s.io/gateway-api",
        "v1.4.1",
        "c20dca8192e9c4d3b5045da5df21123a3268910e982c5e056bd0878a06734bb1",
        "config/crd/standard",
    ),
}
# kind -> (module, CRD file name, served version the collection writes)
KINDS = {
    "ScaledObject": ("keda", "keda.sh_scaledobjects.yaml", "v1alpha1"),
    "Gateway": ("gateway-api", "gateway.networking.k8s.io_gateways.yaml", "v1"),
    "HTTPRoute": ("gateway-api", "gateway.networking.k8s.io_httproutes.yaml", "v1"),
}


def module_zip(name):
    """Path of the pinned module zip in the cache, downloaded when missing; its sha256 is checked."""
    module, version, digest, _folder = MODULES[name]
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "%s-%s.zip" % (module.replace("/", "_"), version))
    if not os.path.exists(path):
        url = "%s/%s/@v/%s.zip" % (GOPROXY, module.lower(), version)
        partial = path + ".part"
        with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as handle:
            handle.write(response.read())
        os.replace(partial, path)
    with open(path, "rb") as handle:
        found = hashlib.sha256(handle.read()).hexdigest()
    assert found == digest, "%s: sha256 %s, pinned %s (delete it to fetch again)" % (path, found, digest)
    return path


def crd(kind):
    """The CustomResourceDefinition of ``kind`` as the project ships it at the pinned version."""
    name, filename, _version = KINDS[kind]
    module, version, _digest, folder = MODULES[name]
    with zipfile.ZipFile(module_zip(name)) as archive:
        text = archive.read("%s@%s/%s/%s" % (module, version, folder, filename)).decode()
    return yaml.safe_load(text)


def schema(kind):
    """openAPIV3Schema of the version the collection writes."""
    version = KINDS[kind][2]
    for served in crd(kind)["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]
    raise AssertionError("%s: no served version %s" % (kind, version))
