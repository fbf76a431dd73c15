# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the one apply path (roles/k8s_apply): image mirroring and render file names."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# Keys under which Kubernetes (and CRDs built on PodSpec: LWS, KServe, Ray, Volcano) keep containers.
CONTAINER_LIST_KEYS = ("containers", "initContainers", "ephemeralContainers")
DEFAULT_REGISTRY = "docker.io"


def split_image(image):
    """Split an image reference into (registry, repository_with_tag_or_digest).

    Follows the docker reference rule: the first path component is a registry only when it contains
    a '.' or a ':' or is 'localhost'; otherwise the image lives on Docker Hub.
    """
    if not isinstance(image, str) or not image.strip():
        raise LlmopsError("image reference must be a non-empty string, got %r" % (image,))
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    if not sep:
        # "nginx:1.27" is docker.io/library/nginx:1.27
        return DEFAULT_REGISTRY, "library/" + image
    return DEFAULT_REGISTRY, image


def mirror_image(image, mirror):
    """Point an image at a mirror registry, keeping repository, tag and digest.

    ``mirror`` is a registry host with an optional path prefix (``harbor.local:5000/proxy``).
    An empty mirror returns the image unchanged.
    """
    if not mirror:
        return image
    mirror = mirror.rstrip("/")
    if "://" in mirror:
        raise LlmopsError("llmops_registry_mirror must be a registry host[/prefix], not a URL: %s" % mirror)
    _registry, repository = split_image(image)
    return "%s/%s" % (mirror, repository)


def rewrite_images(manifest, mirror):
    """Return a copy of ``manifest`` with every container image moved to ``mirror``.

    Walks the whole object, so it covers Pods, Deployments, StatefulSets, Jobs, LeaderWorkerSets
    (leader and worker templates), KServe ServingRuntimes and anything else that embeds containers.
    """
    if not mirror:
        return manifest
    return _rewritten(manifest, mirror)


def _rewritten(node, mirror):
    # Builds new dicts and lists instead of copy.deepcopy: Ansible 2.19 hands a filter lazily templated
    # containers, and deep-copying one carries its unrendered templates out of their context (with a
    # registry mirror set, any manifest holding a template, such as the namespace's name, failed).
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            value = _rewritten(value, mirror)
            if key in CONTAINER_LIST_KEYS and isinstance(value, list):
                value = [
                    dict(item, image=mirror_image(item["image"], mirror))
                    if isinstance(item, dict) and item.get("image")
                    else item
                    for item in value
                ]
            result[key] = value
        return result
    if isinstance(node, list):
        return [_rewritten(item, mirror) for item in node]
    return node


def manifest_filename(manifest, index):
    """File name render mode writes a manifest to: ``NN-kind-namespace-name.yaml`` (apply order kept)."""
    try:
        kind = manifest["kind"]
        name = manifest["metadata"]["name"]
    except (KeyError, TypeError):
        raise LlmopsError("manifest #%d has no kind or metadata.name: %r" % (index, manifest))
    parts = [kind, manifest["metadata"].get("namespace") or "", name]
    slug = "-".join(re.sub(r"[^a-z0-9.]+", "-", part.lower()).strip("-") for part in parts if part)
    return "%02d-%s.yaml" % (index, slug)
