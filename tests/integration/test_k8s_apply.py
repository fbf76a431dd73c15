"""roles/k8s_apply in render mode, through real ansible-playbook runs."""

import yaml


def _render(ansible_playbook, render_dir, *extra):
    return ansible_playbook(
        "tests/integration/playbooks/k8s_apply_render.yml",
        "-e",
        "llmops_render_dir=%s" % render_dir,
        "-e",
        "llmops_registry_mirror=harbor.local/proxy",
        *extra,
        json_output=True,
    )


def test_render_writes_ordered_mirrored_manifests_and_is_idempotent(ansible_playbook, tmp_path):
    first = _render(ansible_playbook, tmp_path)
    assert first.returncode == 0, first.output
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert files == ["01-namespace-llm.yaml", "02-deployment-llm-web.yaml"]
    deployment = yaml.safe_load((tmp_path / "demo" / files[1]).read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "harbor.local/proxy/library/nginx:1.27"
    assert first.stats()["localhost"]["changed"] == 2  # the folder task and the file task

    second = _render(ansible_playbook, tmp_path)
    assert second.returncode == 0, second.output
    assert second.stats()["localhost"]["changed"] == 0


def test_check_mode_writes_nothing(ansible_playbook, tmp_path):
    result = _render(ansible_playbook, tmp_path / "out", "--check")
    assert result.returncode == 0, result.output
    assert not (tmp_path / "out").exists()


def test_bad_apply_mode_fails_with_a_clear_message(ansible_playbook, tmp_path):
    result = ansible_playbook(
        "tests/integration/playbooks/k8s_apply_render.yml",
        "-e",
        "llmops_render_dir=%s" % tmp_path,
        "-e",
        "llmops_apply_mode=yolo",
    )
    assert result.returncode != 0
    assert "llmops_apply_mode must be one of: apply, render, got: yolo" in result.output
    assert not (tmp_path / "demo").exists()
