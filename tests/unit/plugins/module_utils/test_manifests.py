import pytest

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.manifests import (
    manifest_filename,
    mirror_image,
    rewrite_images,
    split_image,
)


@pytest.mark.parametrize(
    "image, expected",
    [
        ("nginx", ("docker.io", "library/nginx")),
        ("lmsysorg/sglang:v0.4.6", ("docker.io", "lmsysorg/sglang:v0.4.6")),
        ("nvcr.io/nvidia/gpu-operator:v24.9.1", ("nvcr.io", "nvidia/gpu-operator:v24.9.1")),
        ("localhost/x:1", ("localhost", "x:1")),
        ("registry:5000/team/app@sha256:abc", ("registry:5000", "team/app@sha256:abc")),
    ],
)
def test_split_image(image, expected):
    assert split_image(image) == expected


def test_mirror_image_keeps_repository_and_tag():
    assert (
        mirror_image("vllm/vllm-openai:v0.9.1", "harbor.local/proxy/") == "harbor.local/proxy/vllm/vllm-openai:v0.9.1"
    )
    assert mirror_image("ghcr.io/open-webui/open-webui:main", "m:5000") == "m:5000/open-webui/open-webui:main"
    assert mirror_image("vllm/vllm-openai:v0.9.1", "") == "vllm/vllm-openai:v0.9.1"


def test_mirror_rejects_url_and_empty_image():
    with pytest.raises(LlmopsError, match="not a URL"):
        mirror_image("nginx", "https://harbor.local")
    with pytest.raises(LlmopsError, match="non-empty"):
        mirror_image("", "harbor.local")


def test_rewrite_images_walks_lws_templates_and_init_containers():
    lws = {
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "r1"},
        "spec": {
            "leaderWorkerTemplate": {
                "leaderTemplate": {"spec": {"containers": [{"name": "l", "image": "lmsysorg/sglang:v0.4.6"}]}},
                "workerTemplate": {
                    "spec": {
                        "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                        "containers": [{"name": "w", "image": "lmsysorg/sglang:v0.4.6"}],
                    }
                },
            }
        },
    }
    out = rewrite_images(lws, "mirror.local")
    template = out["spec"]["leaderWorkerTemplate"]
    assert template["leaderTemplate"]["spec"]["containers"][0]["image"] == "mirror.local/lmsysorg/sglang:v0.4.6"
    assert template["workerTemplate"]["spec"]["initContainers"][0]["image"] == "mirror.local/library/busybox:1.36"
    # the input is not modified
    assert lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["image"].startswith(
        "lmsysorg"
    )


def test_manifest_filename():
    obj = {"kind": "Deployment", "metadata": {"name": "Qwen3_235B", "namespace": "llm"}}
    assert manifest_filename(obj, 3) == "03-deployment-llm-qwen3-235b.yaml"
    assert manifest_filename({"kind": "Namespace", "metadata": {"name": "llm"}}, 1) == "01-namespace-llm.yaml"
    with pytest.raises(LlmopsError, match="no kind or metadata.name"):
        manifest_filename({"metadata": {}}, 1)


class _NoDeepcopy(dict):
    """Stands for Ansible 2.19's lazily templated dict, which must not be deep-copied out of its context."""

    def __deepcopy__(self, memo):
        raise AssertionError("rewrite_images deep-copied its input")


def test_rewrite_images_builds_a_new_object_without_deepcopy():
    pod = _NoDeepcopy(
        apiVersion="v1",
        kind="Namespace",
        metadata=_NoDeepcopy(name="llmops"),
        spec={"containers": [{"name": "a", "image": "lmsysorg/sglang:v0.5.6"}]},
    )
    out = rewrite_images(pod, "harbor.local")
    assert out["spec"]["containers"][0]["image"] == "harbor.local/lmsysorg/sglang:v0.5.6"
    assert pod["spec"]["containers"][0]["image"] == "lmsysorg/sglang:v0.5.6"
    assert out["metadata"] == {"name": "llmops"}
