"""Unit tests for plugins/module_utils/addons.py (cluster add-on logic).

The key lists in tests/unit/fixtures/addons/*.keys.yaml were recorded with scripts/dev/values_keys.py
from the upstream charts' values.yaml at the tag named in each file's ``source``; they hold key names
and the upstream defaults of the image registry/repository keys only.
"""

import glob
import os

import pytest
import yaml

from ansible_collections.llmops.inference.plugins.module_utils import addons
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "addons")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def load_fixture(chart, version):
    with open(os.path.join(FIXTURES, "%s-%s.keys.yaml" % (chart, version))) as handle:
        return yaml.safe_load(handle)


# Image keys of upstream charts that need no mirroring, and why.
NOT_MIRRORED = {
    "vgpuManager.repository",  # empty upstream: the user brings a licensed vGPU driver image
    "global.imageRegistry",  # HAMi: empty global override; the per-component registries are mirrored
}


# ---- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "left,right,expected",
    [
        ("v0.5.1", "0.5.1", 0),
        ("v0.7.0", "v0.8.0", -1),
        ("24.9.1", "v24.10.0", -1),
        ("v26.7.0", "v25.10.1", 1),
        ("v1.10.0", "v1.9.9", 1),
        ("v0.8.0-rc.1", "v0.8.0", 0),
    ],
)
def test_compare_versions(left, right, expected):
    assert addons.compare_versions(left, right) == expected


@pytest.mark.parametrize("bad", ["latest", "v1.2", "", None, "1.2.3.4", "main"])
def test_parse_version_refuses_garbage(bad):
    with pytest.raises(LlmopsError, match="not a version"):
        addons.parse_version(bad)


def test_resolve_known_version_normalizes_leading_v():
    info = addons.resolve_version("volcano", "1.9.0")
    assert info["version"] == "v1.9.0" and info["chart_version"] == "1.9.0" and info["known"]


def test_unknown_version_is_refused_with_the_known_ones_listed():
    with pytest.raises(LlmopsError) as error:
        addons.resolve_version("gpu_operator", "v24.3.0")
    assert "v24.9.1" in error.value.message and "gpu_operator_allow_unknown_version" in error.value.message


def test_unknown_version_allowed_uses_nearest_older_layout():
    info = addons.resolve_version("gpu_operator", "v25.3.4", allow_unknown=True)
    assert not info["known"] and info["layout_of"] == "v24.9.1" and info["chart_version"] == "25.3.4"


def test_seed_versions_are_known():
    """The seed (002) pins GPU Operator v24.9.1, Volcano v1.9.0, LWS v0.5.1: all must be settable."""
    assert "v24.9.1" in addons.known_versions("gpu_operator")
    assert "v1.9.0" in addons.known_versions("volcano")
    assert "v0.5.1" in addons.known_versions("leaderworkerset")


# ---- chart sources ---------------------------------------------------------------------------------


def test_chart_reference_repo_oci_local():
    repo = addons.chart_reference("repo", "volcano", "1.9.0", repo_url="https://volcano-sh.github.io/helm-charts")
    assert repo == {
        "chart_ref": "volcano",
        "chart_repo_url": "https://volcano-sh.github.io/helm-charts",
        "chart_version": "1.9.0",
        "local": False,
    }
    oci = addons.chart_reference("oci", "lws", "0.10.0", oci_ref="oci://registry.k8s.io/lws/charts/lws")
    assert oci["chart_ref"] == "oci://registry.k8s.io/lws/charts/lws" and oci["chart_repo_url"] is None
    local = addons.chart_reference("local", "hami", "2.10.0", archive="/srv/charts/hami-2.10.0.tgz")
    assert local["local"] and local["chart_version"] is None


@pytest.mark.parametrize(
    "source,kwargs,words",
    [
        ("repo", {}, "no repository URL"),
        ("oci", {"oci_ref": "registry.k8s.io/lws"}, "oci://"),
        ("local", {}, "no chart archive"),
        ("git", {}, "repo, oci or local"),
    ],
)
def test_chart_reference_missing_source_says_what_to_set(source, kwargs, words):
    with pytest.raises(LlmopsError, match=words):
        addons.chart_reference(source, "lws", "0.10.0", **kwargs)


# ---- values and mirror -------------------------------------------------------------------------------


def test_build_values_maps_settings_and_skips_unset():
    values = addons.build_values(
        "gpu_operator",
        "v24.9.1",
        {"driver_enabled": False, "toolkit_enabled": True, "mig_strategy": "single", "driver_version": ""},
    )
    assert values == {"driver": {"enabled": False}, "toolkit": {"enabled": True}, "mig": {"strategy": "single"}}


def test_build_values_mirror_keeps_repository_path():
    values = addons.build_values(
        "gpu_operator", "v24.9.1", {"driver_enabled": False}, mirror="harbor.local:5000/proxy/"
    )
    assert values["driver"] == {
        "enabled": False,
        "repository": "harbor.local:5000/proxy/nvidia",
        "manager": {"repository": "harbor.local:5000/proxy/nvidia/cloud-native"},
    }
    assert values["toolkit"]["repository"] == "harbor.local:5000/proxy/nvidia/k8s"
    assert "repository" not in values.get("vgpuManager", {})


def test_build_values_mirror_registry_style_and_user_repository():
    hami = addons.build_values("hami", "v2.10.0", {}, mirror="mirror.example:5000")
    assert hami["scheduler"]["kubeScheduler"]["image"]["registry"] == "mirror.example:5000"
    volcano_old = addons.build_values("volcano", "v1.9.0", {}, mirror="mirror.example:5000")
    assert volcano_old["basic"]["scheduler_image_name"] == "mirror.example:5000/volcanosh/vc-scheduler"
    kuberay = addons.build_values(
        "kuberay", "v1.7.0", {}, {"image": {"repository": "quay.io/myorg/operator"}}, mirror="m.local"
    )
    assert kuberay["image"]["repository"] == "m.local/myorg/operator"


def test_build_values_without_mirror_passes_no_image_keys():
    assert addons.build_values("leaderworkerset", "v0.10.0", {"replicas": 2}) == {"replicaCount": 2}


def test_extra_values_win_over_settings():
    values = addons.build_values(
        "volcano", "v1.15.1", {"scheduler_replicas": 1}, {"custom": {"scheduler_replicas": 3, "metrics_enable": True}}
    )
    assert values["custom"] == {"scheduler_replicas": 3, "metrics_enable": True}


def test_setting_needing_newer_version_is_refused():
    with pytest.raises(LlmopsError, match="needs leaderworkerset v0.7.0 or newer"):
        addons.build_values("leaderworkerset", "v0.5.1", {"gang_scheduler": "volcano"})


def test_unknown_setting_is_refused():
    with pytest.raises(LlmopsError, match="has no setting"):
        addons.build_values("kuberay", "v1.7.0", {"batch_schedular": "volcano"})


def test_mirror_url_is_refused():
    with pytest.raises(LlmopsError, match="not a URL"):
        addons.build_values("kuberay", "v1.7.0", {}, mirror="https://harbor.local")


# ---- the catalog against the upstream charts -------------------------------------------------------------

CATALOG_VERSIONS = [
    (addon, version)
    for addon, entry in sorted(addons.CATALOG.items())
    if entry["chart"]
    for version in sorted(entry["versions"])
]


@pytest.mark.parametrize("addon,version", CATALOG_VERSIONS)
def test_catalog_image_keys_match_upstream(addon, version):
    """Every image key we mirror exists upstream with the default we assume, and every upstream
    image key is mirrored (directly, through its sibling registry key, or listed in NOT_MIRRORED)."""
    fixture = load_fixture(addons.CATALOG[addon]["chart"], version)
    upstream = fixture["images"]
    ours = {path: default for _style, path, default in addons.CATALOG[addon]["versions"][version]["images"]}
    for path, default in ours.items():
        assert path in upstream, "%s %s: %s is not an image key of the upstream chart" % (addon, version, path)
        assert upstream[path] == default, "%s %s: upstream default of %s is %r" % (addon, version, path, upstream[path])
    registry_parents = {
        path.rsplit(".", 1)[0]
        for style, path, _d in addons.CATALOG[addon]["versions"][version]["images"]
        if style == "registry"
    }
    for path in upstream:
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        covered = path in ours or path in NOT_MIRRORED or parent in registry_parents
        assert covered, "%s %s: upstream image key %s is not mirrored" % (addon, version, path)


@pytest.mark.parametrize("addon,version", CATALOG_VERSIONS)
def test_every_setting_key_exists_upstream(addon, version):
    fixture = load_fixture(addons.CATALOG[addon]["chart"], version)
    for name, (path, minimum) in addons.CATALOG[addon]["settings"].items():
        if minimum and addons.compare_versions(version, minimum) < 0:
            continue
        assert not addons.unknown_keys(_nested(path), fixture["keys"]), (
            "%s %s: setting %s maps to %s, which the upstream chart does not have" % (addon, version, name, path)
        )


def _nested(path):
    node = value = {}
    parts = path.split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = "x"
    return value


def test_unknown_keys_accepts_keys_under_open_maps_only():
    upstream = ["worker", "worker.nodeSelector", "worker.nodeSelector.{}", "image", "image.repository"]
    assert addons.unknown_keys({"worker": {"nodeSelector": {"gpu": "on"}}}, upstream) == []
    assert addons.unknown_keys({"image": {"repo": "x"}}, upstream) == ["image.repo"]


def _role_settings(role):
    """The role's defaults that feed build_values: <role>_settings in defaults/main.yml."""
    with open(os.path.join(ROOT, "roles", role, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    return defaults, defaults["%s_settings" % role]


HELM_ROLES = ["gpu_operator", "node_feature_discovery", "volcano", "leaderworkerset", "kuberay", "hami"]


@pytest.mark.parametrize("role", HELM_ROLES)
def test_role_default_values_match_upstream_keys(role):
    """The values each role passes by default (plus a mirror) use only keys the upstream chart has,
    for every known version (the seeds' older versions included)."""
    defaults, settings = _role_settings(role)
    assert set(settings) <= set(addons.CATALOG[role]["settings"])
    for version in addons.known_versions(role):
        resolved = {}
        for name, value in settings.items():
            if isinstance(value, str) and "{{" in value:
                value = "templated"  # a Jinja default: the key is what matters here
            minimum = addons.CATALOG[role]["settings"][name][1]
            if minimum and addons.compare_versions(version, minimum) < 0:
                value = None
            resolved[name] = value
        values = addons.build_values(
            role, version, resolved, defaults.get("%s_values" % role) or {}, mirror="mirror.example:5000"
        )
        fixture = load_fixture(addons.CATALOG[role]["chart"], version)
        assert addons.unknown_keys(values, fixture["keys"]) == [], "%s %s" % (role, version)


def test_fixtures_name_their_source():
    for path in glob.glob(os.path.join(FIXTURES, "*.keys.yaml")):
        with open(path) as handle:
            fixture = yaml.safe_load(handle)
        assert fixture["source"].startswith("github.com/") and " tag v" in fixture["source"], path
        assert fixture["keys"], path


# ---- LWS upgrade guard ----------------------------------------------------------------------------------


def _crd(annotations=None):
    return {"metadata": {"name": addons.LWS_CRD_NAME, "annotations": annotations or {}}}


HELM_OWNED = {"meta.helm.sh/release-name": "lws", "meta.helm.sh/release-namespace": "lws-system"}


def test_lws_fresh_install():
    plan = addons.lws_upgrade_plan("", "v0.10.0", {})
    assert plan["action"] == "install" and not plan["annotate_keep"]


def test_lws_crossing_the_crd_move_takes_the_safe_path():
    plan = addons.lws_upgrade_plan("v0.5.1", "v0.10.0", _crd(HELM_OWNED))
    assert plan == dict(plan, action="safe_upgrade", annotate_keep=True, apply_crds=True)
    assert "safe path" in plan["message"]


def test_lws_crossing_with_refuse_policy_stops_and_says_how():
    with pytest.raises(LlmopsError) as error:
        addons.lws_upgrade_plan("v0.7.0", "v0.8.0", _crd(HELM_OWNED), policy="refuse")
    assert "kubectl annotate crd leaderworkersets.leaderworkerset.x-k8s.io" in error.value.message


def test_lws_crossing_when_crd_already_kept():
    plan = addons.lws_upgrade_plan("v0.7.0", "v0.10.0", _crd(dict(HELM_OWNED, **{"helm.sh/resource-policy": "keep"})))
    assert plan["action"] == "upgrade" and not plan["annotate_keep"] and plan["apply_crds"]


def test_lws_upgrade_within_new_layout_applies_crds_first():
    plan = addons.lws_upgrade_plan("v0.8.0", "v0.10.0", _crd())
    assert plan["action"] == "upgrade" and plan["apply_crds"] and not plan["annotate_keep"]


def test_lws_upgrade_within_old_layout_is_plain():
    plan = addons.lws_upgrade_plan("v0.5.1", "v0.7.0", _crd(HELM_OWNED))
    assert plan["action"] == "upgrade" and not plan["apply_crds"]


def test_lws_downgrade_across_the_move_is_refused():
    with pytest.raises(LlmopsError, match="downgrade"):
        addons.lws_upgrade_plan("v0.10.0", "v0.5.1", _crd())


def test_lws_old_chart_over_manifest_install_is_refused():
    """The seed installs LWS v0.5.1 from manifests.yaml: the CRD exists without Helm ownership."""
    with pytest.raises(LlmopsError, match="not owned by Helm|outside Helm"):
        addons.lws_upgrade_plan("", "v0.5.1", _crd())
    assert addons.lws_upgrade_plan("", "v0.10.0", _crd())["action"] == "install"


def test_lws_bad_policy():
    with pytest.raises(LlmopsError, match="safe or refuse"):
        addons.lws_upgrade_plan("v0.5.1", "v0.10.0", {}, policy="yolo")


# ---- status fields ----------------------------------------------------------------------------------


def test_field_at_reads_state_and_conditions():
    crd = {
        "status": {
            "conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]
        }
    }
    assert addons.field_at(crd, "status.conditions[type=Established].status") == "True"
    assert addons.field_at(crd, "status.conditions[type=Missing].status") is None
    assert addons.field_at({"status": {"state": "ready"}}, "status.state") == "ready"
    assert addons.field_at({}, "status.state", "unknown") == "unknown"


def test_lws_same_version_rerun_applies_no_crds():
    """A re-run or a values change on the installed version leaves the CRDs alone (idempotent, no server apply)."""
    plan = addons.lws_upgrade_plan("v0.10.0", "v0.10.0")
    assert plan["action"] == "upgrade" and plan["apply_crds"] is False
    assert addons.lws_upgrade_plan("v0.9.0", "v0.10.0")["apply_crds"] is True
