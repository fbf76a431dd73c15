"""Filters of the bare-metal roles: the apt-cache madison output shape (apt 2.6, Debian 12) and refusals."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.inference.plugins.filter.bare_metal import FilterModule

FILTERS = FilterModule().filters()
# `apt-cache madison nvidia-fabricmanager-550` in the shape apt prints it (package | version | source).
REPO = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64  Packages"
MADISON = [
    "nvidia-fabricmanager-550 | 550.144.03-1 | " + REPO,
    "nvidia-fabricmanager-550 | 550.127.05-1 | " + REPO,
]


def test_locked_version_from_madison():
    versions = FILTERS["madison_versions"](MADISON)
    assert versions == ["550.144.03-1", "550.127.05-1"]
    assert FILTERS["locked_version"](versions, "550.127.05", "Fabric Manager") == "550.127.05-1"
    with pytest.raises(AnsibleFilterError, match="Fabric Manager 550.90.07 is not in the repository"):
        FILTERS["locked_version"](versions, "550.90.07", "Fabric Manager")
    assert FILTERS["driver_branch"]("550.127.05") == "550"
    with pytest.raises(AnsibleFilterError, match="full version"):
        FILTERS["driver_branch"]("550")
    assert FILTERS["upstream_version"]("1:535.261.03-1") == "535.261.03"


def test_ascend_filters():
    plan = FILTERS["ascend_install_plan"]({"driver": "24.1.0", "firmware": ""}, "24.1.0", "7.5.0.3.220")
    assert [(s["component"], s["action"]) for s in plan] == [("firmware", "full")]
    assert FILTERS["version_info"]("Version=24.1.0\npackage_version=24.1.0\n")["Version"] == "24.1.0"
    with pytest.raises(AnsibleFilterError, match="llmops_reboot"):
        FILTERS["ascend_reboot_decision"](plan, "sometimes")


# `dnf repoquery --queryformat '%{epoch}:%{version}-%{release}' nvidia-driver` lines (dnf 4.14 prints one per
# package in the enabled repositories; notices such as metadata expiry go to the same stream with -q off).
REPOQUERY = ["3:550.127.05-1.el9", "3:550.144.03-1.el9", "Last metadata expiration check: 0:00:01 ago"]


def test_repository_versions_of_apt_and_dnf():
    assert FILTERS["repository_versions"](MADISON, "apt") == ["550.144.03-1", "550.127.05-1"]
    assert FILTERS["repository_versions"](REPOQUERY, "dnf") == ["3:550.127.05-1.el9", "3:550.144.03-1.el9"]
    assert FILTERS["locked_version"](FILTERS["repository_versions"](REPOQUERY, "dnf"), "550.127.05", "FM") == (
        "3:550.127.05-1.el9"
    )
    with pytest.raises(AnsibleFilterError, match="apt or dnf"):
        FILTERS["repository_versions"](MADISON, "zypper")


def test_packages_at_version_selects_the_drivers_own_packages():
    # package_facts' shape for rpm (version without epoch and release) and for apt (dpkg version).
    packages = {
        "nvidia-driver": [{"version": "550.127.05", "epoch": 3, "release": "1.el9"}],
        "nvidia-driver-libs": [{"version": "550.127.05", "epoch": 3, "release": "1.el9"}],
        "nvidia-persistenced": [{"version": "550.127.05", "epoch": 3, "release": "1.el9"}],
        "nvidia-container-toolkit": [{"version": "1.17.8", "release": "1"}],
        "dkms": [{"version": "3.1.5", "release": "1.el9"}],
        "libcuda1": [{"version": "550.127.05-1"}],
    }
    patterns = ["*nvidia*", "libcuda*"]
    assert FILTERS["packages_at_version"](packages, "550.127.05", patterns) == [
        "libcuda1",
        "nvidia-driver",
        "nvidia-driver-libs",
        "nvidia-persistenced",
    ]
    assert FILTERS["packages_at_version"](packages, "550.144.03", patterns) == []
    assert FILTERS["packages_at_version"]({}, "550.127.05", patterns) == []
