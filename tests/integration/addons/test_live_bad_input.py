"""Bad input on the live path (apply mode, test bed up, real helm): the play stops with a message a person can act
on, and nothing is half-installed: no Helm release exists afterwards. The chart is our stand-in served on loopback
(the chart_repo fixture; the upstream chart repositories are unreachable here).
"""

import pytest
from charts import release

KUBERAY = ("kuberay-operator", "kuberay-system")


@pytest.mark.parametrize(
    "case",
    [
        "unknown version",
        "missing chart source",
        "missing chart archive",
        "mirror does not answer",
        "chart repository does not answer",
    ],
)
def test_bad_input_installs_nothing(case, addons, chart_repo, closed_port):
    variables = {"kuberay_chart_repo_url": chart_repo.url}
    expected = {
        "unknown version": "kuberay version v1.8.9 is not one this collection knows (known: v1.7.0, v1.2.2)",
        "missing chart source": "chart source is 'repo' but no repository URL is set for kuberay-operator",
        "missing chart archive": "no chart archive is set for kuberay-operator",
        "mirror does not answer": f"the registry mirror 127.0.0.1:{closed_port}/proxy does not answer",
        "chart repository does not answer": f"127.0.0.1:{closed_port}/index.yaml",
    }[case]
    if case == "unknown version":
        variables["kuberay_version"] = "v1.8.9"
    elif case == "missing chart source":
        variables["kuberay_chart_repo_url"] = ""
    elif case == "missing chart archive":
        variables["kuberay_chart_source"] = "local"
    elif case == "chart repository does not answer":
        variables["kuberay_chart_repo_url"] = f"http://127.0.0.1:{closed_port}"
    else:
        variables["llmops_registry_mirror"] = f"127.0.0.1:{closed_port}/proxy"
    assert release(*KUBERAY) is None

    result = addons("kuberay", case, **variables)[0]
    assert result.returncode != 0
    assert expected in result.output, result.output[-4000:]
    assert "nothing was" in result.output  # "nothing was changed" / "nothing was installed"
    assert release(*KUBERAY) is None
