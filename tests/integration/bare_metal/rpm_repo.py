"""Build a local dnf repository of SYNTHETIC RPMs that carry the real names, epochs, versions and dependencies
of NVIDIA's RHEL 9 CUDA-repository driver packages (nvidia_driver's dnf path, fabric_manager's dnf path).

Why synthetic: NVIDIA's CUDA repository (developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/) is
not reachable from CI. What is real: Debian's rpmbuild builds real .rpm files, Debian's createrepo_c writes
real repodata, and Debian's dnf 4.14 (with dnf-plugins-core's versionlock) resolves, installs, locks and
refuses them in the Rocky-9-looking rootfs exactly as dnf does on a RHEL host. What is not: the payload
(each package ships only the files the roles touch: a systemd unit, the DKMS source folder, a script).

Where the package metadata comes from (NVIDIA's own spec files, github.com/NVIDIA/yum-packaging-*):
- nvidia-driver.spec (yum-packaging-nvidia-driver): ``Epoch: 3``; nvidia-driver Requires
  nvidia-driver-libs = 3:V, nvidia-kmod-common = 3:V, dnf-plugin-nvidia (RHEL >= 8) and
  xorg-x11-server-Xorg; nvidia-driver-cuda Requires nvidia-driver-cuda-libs = 3:V, nvidia-persistenced = 3:V,
  opencl-filesystem, ocl-icd; -libs Requires libglvnd-*, egl-wayland, vulkan-loader (dropped here: distro
  libraries the role never names).
- dkms-nvidia.spec (yum-packaging-dkms-nvidia, built as kmod-nvidia-latest-dkms in the CUDA repository):
  Epoch 3, Provides nvidia-kmod = 3:V, Requires nvidia-kmod-common = 3:V and dkms (EPEL); %post runs
  ``dkms add/build/install``; the source lands in /usr/src/nvidia-V.
- nvidia-kmod-common.spec: Epoch 3, noarch, Requires grubby and nvidia-kmod = 3:V.
- Fabric Manager: the RHEL 8/9 CUDA repository carries ``nvidia-fabric-manager`` (the module streams' ``fm``
  profile; no Epoch, Release 1), the unit in /usr/lib/systemd/system (fabricmanager.spec).
Releases are ``1.el9`` as in the rhel9 repository. Distribution packages the NVIDIA ones require (dkms from
EPEL, grubby, xorg-x11-server-Xorg, ocl-icd, opencl-filesystem) are empty stand-ins in a second repository,
the way a Rocky host has them from BaseOS/AppStream/EPEL.
"""

import os
import shutil
import textwrap

DRIVER_EPOCH = 3


def _spec(name, version, release, epoch, requires, provides, arch, files, scripts, description):
    lines = [
        "Name: %s" % name,
        "Version: %s" % version,
        "Release: %s" % release,
        "Summary: synthetic stand-in for %s (tests only)" % name,
        "License: test stand-in",
        "BuildArch: %s" % arch,
        "AutoReqProv: no",
    ]
    if epoch is not None:
        lines.append("Epoch: %d" % epoch)
    lines += ["Requires: %s" % item for item in requires]
    lines += ["Provides: %s" % item for item in provides]
    lines += ["", "%description", description or "Synthetic stand-in for %s (llmops.inference tests)." % name]
    lines += ["", "%install", "mkdir -p %{buildroot}"]
    for index, path in enumerate(sorted(files)):
        lines.append("install -D -m %o %%{_sourcedir}/f%d %%{buildroot}%s" % (files[path][0], index, path))
    for script, body in (scripts or {}).items():
        lines += ["", "%%%s" % script, textwrap.dedent(body).strip()]
    lines += ["", "%files"] + sorted(files)
    return "\n".join(lines) + "\n"


def build_rpm(
    rootfs,
    workdir,
    name,
    version,
    release="1.el9",
    epoch=None,
    requires=(),
    provides=(),
    arch="x86_64",
    files=None,
    scripts=None,
    description=None,
):
    """One .rpm built by the rootfs's rpmbuild; workdir is a path inside the rootfs. Returns its file name."""
    files = files or {}
    top = os.path.join(workdir, "%s-%s" % (name, version))
    sources = rootfs.file(os.path.join(top, "SOURCES"))
    os.makedirs(sources, exist_ok=True)
    for index, path in enumerate(sorted(files)):
        with open(os.path.join(sources, "f%d" % index), "w") as handle:
            handle.write(textwrap.dedent(files[path][1]).lstrip())
    spec = os.path.join(top, "pkg.spec")
    with open(rootfs.file(spec), "w") as handle:
        handle.write(_spec(name, version, release, epoch, requires, provides, arch, files, scripts, description))
    result = rootfs.run("rpmbuild", "--quiet", "-bb", "--define", "_topdir " + top, spec)
    if result.returncode != 0:
        raise RuntimeError("rpmbuild %s failed: %s%s" % (name, result.stdout, result.stderr))
    return os.path.join(top, "RPMS", arch, "%s-%s-%s.%s.rpm" % (name, version, release, arch))


def build_repo(rootfs, repo_dir, packages):
    """repo_dir (inside the rootfs) becomes a dnf repository (createrepo_c) holding ``packages``."""
    full = rootfs.file(repo_dir)
    shutil.rmtree(full, ignore_errors=True)
    os.makedirs(full)
    work = repo_dir + "/.build"
    for spec in packages:
        built = build_rpm(rootfs, work, **spec)
        os.replace(rootfs.file(built), os.path.join(full, os.path.basename(built)))
    shutil.rmtree(rootfs.file(work))
    result = rootfs.run("createrepo_c", "--quiet", repo_dir)
    if result.returncode != 0:
        raise RuntimeError("createrepo_c failed: %s" % result.stderr)
    return repo_dir


def driver(version):
    """The driver packages of one version as NVIDIA's rhel9 CUDA repository ships them (non-open, DKMS)."""
    exact = "= %d:%s" % (DRIVER_EPOCH, version)
    common = dict(version=version, epoch=DRIVER_EPOCH)
    return [
        dict(
            name="nvidia-driver",
            requires=[
                "nvidia-driver-libs " + exact,
                "nvidia-kmod-common " + exact,
                "dnf-plugin-nvidia",
                "xorg-x11-server-Xorg >= 1.19.0-3",
            ],
            provides=["nvidia-drivers"],
            **common,
        ),
        dict(name="nvidia-driver-libs", **common),
        dict(name="nvidia-driver-cuda-libs", **common),
        dict(
            name="nvidia-driver-cuda",
            requires=[
                "nvidia-driver-cuda-libs " + exact,
                "nvidia-persistenced " + exact,
                "opencl-filesystem",
                "ocl-icd",
            ],
            files={"/usr/bin/nvidia-smi": (0o755, "#!/bin/sh\necho 'stand-in nvidia-smi %s'\n" % version)},
            **common,
        ),
        dict(
            name="nvidia-persistenced",
            files={
                "/usr/lib/systemd/system/nvidia-persistenced.service": (
                    0o644,
                    "[Unit]\nDescription=NVIDIA Persistence Daemon\n[Service]\nType=forking\n"
                    "ExecStart=/usr/bin/nvidia-persistenced --verbose\n[Install]\nWantedBy=multi-user.target\n",
                )
            },
            **common,
        ),
        dict(name="nvidia-kmod-common", arch="noarch", requires=["grubby", "nvidia-kmod " + exact], **common),
        dict(
            name="kmod-nvidia-latest-dkms",
            requires=["nvidia-kmod-common " + exact, "dkms"],
            provides=["nvidia-kmod " + exact],
            files={
                "/usr/src/nvidia-%s/dkms.conf" % version: (
                    0o644,
                    'PACKAGE_NAME="nvidia"\nPACKAGE_VERSION="%s"\n' % version,
                )
            },
            **common,
        ),
    ]


def fabric_manager(version):
    """nvidia-fabric-manager of the RHEL 8/9 CUDA repository (no Epoch) with its unit and config."""
    return [
        dict(
            name="nvidia-fabric-manager",
            version=version,
            release="1",
            files={
                "/usr/bin/nv-fabricmanager": (0o755, "#!/bin/sh\necho 'Fabric Manager version is : %s'\n" % version),
                "/usr/share/nvidia/nvswitch/fabricmanager.cfg": (0o644, "LOG_LEVEL=4\nFABRIC_MODE=0\n"),
                "/usr/lib/systemd/system/nvidia-fabricmanager.service": (
                    0o644,
                    "[Unit]\nDescription=NVIDIA fabric manager service\n[Service]\nType=forking\n"
                    "ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg\n"
                    "[Install]\nWantedBy=multi-user.target\n",
                ),
            },
        )
    ]


def cuda_repo(driver_versions, fabric_manager_versions=()):
    """The packages of a CUDA-repository copy: dnf-plugin-nvidia once, the driver and FM per version."""
    packages = [dict(name="dnf-plugin-nvidia", version="2.0", release="1.el9", arch="noarch")]
    for version in driver_versions:
        packages += driver(version)
    for version in fabric_manager_versions:
        packages += fabric_manager(version)
    return packages


def distro_stand_ins():
    """Empty packages named as the Rocky 9 BaseOS/AppStream/EPEL ones the NVIDIA packages require."""
    return [
        dict(name="dkms", version="3.1.5", release="1.el9", arch="noarch"),
        dict(name="grubby", version="8.40", release="61.el9"),
        dict(name="xorg-x11-server-Xorg", version="1.20.11", release="24.el9"),
        dict(name="ocl-icd", version="2.2.13", release="4.el9"),
        dict(name="opencl-filesystem", version="1.0", release="14.el9", arch="noarch"),
    ]
