"""`ansible-playbook playbooks/awx_configure.yml --check` against the validation harness
(awx_check_harness.py: no controller can run here). The real awx.awx modules run with the role's
templated arguments, look every object up by name, and in check mode write nothing; the secrets
given as credential inputs never reach the output."""

import json

from awx_check_harness import Harness

SECRET = "s3cr3t-never-printed-7d41"


def test_awx_configure_check_mode_passes_against_the_harness(ansible_playbook, tmp_path):
    extra = {
        "awx_configure_controller_oauthtoken": "token-for-the-harness",
        "awx_configure_controller_validate_certs": False,
        "awx_configure_credentials": {
            "kubeconfig": {"kubeconfig": "apiVersion: v1\nkind: Config\n# " + SECRET},
            "s3": {"access_key": "minio", "secret_key": SECRET},
            "model_hub": {},
            "api_key": {"api_key": SECRET},
        },
        "awx_configure_machine_credential": "gpu hosts ssh",
        "awx_configure_survey_defaults": {"model": "deepseek-ai/DeepSeek-R1", "accelerator": "H20-96G"},
    }
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    with Harness() as harness:
        run = ansible_playbook(
            "playbooks/awx_configure.yml",
            "--check",
            "-e",
            "awx_configure_controller_host=%s" % harness.url,
            "-e",
            "@%s" % extra_file,
            json_output=True,
        )
        assert run.returncode == 0, run.output[-5000:]
        assert harness.writes() == []
    stats = run.stats()["localhost"]
    assert stats["failures"] == 0 and stats["unreachable"] == 0
    assert SECRET not in run.output
    # every awx.awx task ran (none skipped): the organization, EE, project, 8 inventories and sources,
    # 4 credential types, 3 credentials (model_hub is empty), 4 job templates (no preflight playbook
    # yet) or 5, and the workflow
    paths = {path for method, path, _query in harness.requests}
    for endpoint in (
        "organizations",
        "execution_environments",
        "projects",
        "inventories",
        "inventory_sources",
        "credential_types",
        "credentials",
        "job_templates",
        "workflow_job_templates",
    ):
        assert "/api/v2/%s/" % endpoint in paths, endpoint
    lookups = [query.get("name") for method, path, query in harness.requests if path == "/api/v2/credentials/"]
    assert "llmops kubeconfig" in lookups and "llmops api_key" in lookups and "llmops model_hub" not in lookups
    sites = {query.get("name") for method, path, query in harness.requests if path == "/api/v2/inventories/"}
    assert {"llmops local", "llmops testbed", "llmops openshift-ai-kserve"} <= sites
