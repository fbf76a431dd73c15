"""Build a local apt repository of SYNTHETIC packages that carry the real names, versions and dependencies
of NVIDIA's (Fabric Manager, container toolkit, DOCA-OFED).

Why synthetic: NVIDIA's CUDA and DOCA repositories are not reachable from CI (only Debian's archive is).
What is real: dpkg-deb builds real .deb files, dpkg-scanpackages writes a real Packages index, and the
rootfs's real apt resolves, pins, holds and refuses them exactly as it would NVIDIA's repository.
What is not: the payload. Each package ships only the files the roles touch (a systemd unit, a config
file, a small script standing in for a binary, e.g. nvidia-ctk writing the config the real one writes).
"""

import os
import subprocess
import textwrap


def build_deb(
    workdir, name, version, depends=(), files=None, scripts=None, arch="amd64", description=None, provides=()
):
    """One .deb: files {absolute path: (mode, text)}, scripts {postinst: text}; returns its path."""
    tree = os.path.join(workdir, "%s_%s" % (name, version))
    os.makedirs(os.path.join(tree, "DEBIAN"), exist_ok=True)
    control = [
        "Package: %s" % name,
        "Version: %s" % version,
        "Architecture: %s" % arch,
        "Maintainer: llmops.inference tests <tests@llmops.invalid>",
        "Description: %s" % (description or "synthetic stand-in for NVIDIA's %s (tests only)" % name),
    ]
    if depends:
        control.append("Depends: %s" % ", ".join(depends))
    if provides:
        control.append("Provides: %s" % ", ".join(provides))
    with open(os.path.join(tree, "DEBIAN", "control"), "w") as handle:
        handle.write("\n".join(control) + "\n")
    for script, body in (scripts or {}).items():
        path = os.path.join(tree, "DEBIAN", script)
        with open(path, "w") as handle:
            handle.write(textwrap.dedent(body).lstrip())
        os.chmod(path, 0o755)
    for path, (mode, text) in (files or {}).items():
        full = os.path.join(tree, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as handle:
            handle.write(textwrap.dedent(text).lstrip())
        os.chmod(full, mode)
    out = os.path.join(workdir, "%s_%s_%s.deb" % (name, version.split(":")[-1], arch))
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, out], check=True, capture_output=True)
    return out


def build_repo(repo_dir, packages):
    """A flat repository (deb [trusted=yes] file:<repo_dir> ./) holding ``packages`` (build_deb kwargs)."""
    os.makedirs(repo_dir, exist_ok=True)
    work = os.path.join(repo_dir, ".build")
    os.makedirs(work, exist_ok=True)
    for spec in packages:
        deb = build_deb(work, **spec)
        os.replace(deb, os.path.join(repo_dir, os.path.basename(deb)))
    index = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=repo_dir, check=True, capture_output=True, text=True
    ).stdout
    with open(os.path.join(repo_dir, "Packages"), "w") as handle:
        handle.write(index)
    subprocess.run(["rm", "-rf", work], check=True)
    return repo_dir


def fabric_manager(version, branch=None):
    """nvidia-fabricmanager-<branch>: the unit and config the real package installs (CUDA repo layout)."""
    branch = branch or version.split(".")[0]
    return dict(
        name="nvidia-fabricmanager-%s" % branch,
        version="%s-1" % version,
        provides=["nvidia-fabricmanager"],
        files={
            "/usr/bin/nv-fabricmanager": (0o755, "#!/bin/sh\necho 'Fabric Manager version is : %s'\n" % version),
            "/usr/share/nvidia/nvswitch/fabricmanager.cfg": (0o644, "LOG_LEVEL=4\nFABRIC_MODE=0\n"),
            "/lib/systemd/system/nvidia-fabricmanager.service": (
                0o644,
                """
                [Unit]
                Description=NVIDIA fabric manager service
                [Service]
                Type=forking
                ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg
                [Install]
                WantedBy=multi-user.target
                """,
            ),
        },
    )


# Stand-in for nvidia-ctk: only `runtime configure`, with the flags the role uses. It prints (--dry-run) or
# writes the config with the nvidia runtime table the real nvidia-ctk 1.17 adds (containerd config v2 and
# CRI-O drop-in shapes from NVIDIA's container toolkit install guide), leaving a configured file as it is.
NVIDIA_CTK = r"""#!/bin/sh
[ "$1 $2" = "runtime configure" ] || { echo "stand-in nvidia-ctk: unsupported: $*" >&2; exit 2; }
shift 2
runtime=docker config="" dry=0 default=0
for arg in "$@"; do
  case "$arg" in
    --runtime=*) runtime=${arg#*=} ;;
    --config=*) config=${arg#*=} ;;
    --dry-run) dry=1 ;;
    --set-as-default) default=1 ;;
    *) echo "stand-in nvidia-ctk: unknown flag $arg" >&2; exit 2 ;;
  esac
done
current=$(cat "$config" 2>/dev/null)
case "$runtime" in
  containerd)
    marker='[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]'
    block='version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  privileged_without_host_devices = false
  runtime_engine = ""
  runtime_root = ""
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
    BinaryName = "/usr/bin/nvidia-container-runtime"'
    [ $default = 1 ] && block="$block
[plugins.\"io.containerd.grpc.v1.cri\".containerd]
  default_runtime_name = \"nvidia\"" ;;
  crio)
    marker='[crio.runtime.runtimes.nvidia]'
    block='[crio.runtime.runtimes.nvidia]
runtime_path = "/usr/bin/nvidia-container-runtime"
runtime_type = "oci"'
    [ $default = 1 ] && block="[crio.runtime]
default_runtime = \"nvidia\"
$block" ;;
  *) echo "stand-in nvidia-ctk: runtime $runtime not supported" >&2; exit 2 ;;
esac
if printf '%s' "$current" | grep -qF "$marker"; then out=$current; else out=${current:+$current
}$block; fi
if [ $dry = 1 ]; then printf '%s\n' "$out"; else mkdir -p "$(dirname "$config")"; printf '%s\n' "$out" > "$config"; fi
"""


def container_toolkit(version):
    """nvidia-container-toolkit and its libraries at one version, with the real dependency shape."""
    rev = "%s-1" % version
    return [
        dict(name="libnvidia-container1", version=rev),
        dict(name="libnvidia-container-tools", version=rev, depends=["libnvidia-container1 (>= %s)" % rev]),
        dict(
            name="nvidia-container-toolkit-base",
            version=rev,
            files={"/usr/bin/nvidia-ctk": (0o755, NVIDIA_CTK)},
        ),
        dict(
            name="nvidia-container-toolkit",
            version=rev,
            depends=["nvidia-container-toolkit-base (= %s)" % rev, "libnvidia-container-tools (>= %s)" % rev],
            files={"/usr/bin/nvidia-container-runtime": (0o755, '#!/bin/sh\nexec runc "$@"\n')},
        ),
    ]


def ofed(version, meta="doca-ofed"):
    """``meta`` (doca-ofed, or MLNX_OFED's mlnx-ofed-all) at an MLNX_OFED-style version (seed 002:
    24.10-0.7.0.0) with the pieces the role touches: ofed_info (prints `MLNX_OFED_LINUX-<version>:` as the
    real `ofed_info -s` does), the openibd unit and an rdma-core whose version sorts above Debian's inbox one,
    as NVIDIA's does (2410mlnx54...)."""
    return [
        dict(name="rdma-core", version="2410mlnx54-1.%s" % version.replace("-", ".").replace(".", "")),
        dict(
            name="mlnx-ofed-kernel-utils",
            version=version,
            files={
                "/usr/bin/ofed_info": (0o755, "#!/bin/sh\n[ \"$1\" = -s ] && echo 'MLNX_OFED_LINUX-%s:'\n" % version),
                "/lib/systemd/system/openibd.service": (
                    0o644,
                    "[Unit]\nDescription=openibd\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
                    "[Install]\nWantedBy=multi-user.target\n",
                ),
            },
        ),
        dict(
            name=meta,
            version=version,
            depends=["mlnx-ofed-kernel-utils (= %s)" % version, "rdma-core (>= 2410mlnx54)"],
        ),
    ]


def build_ofed_iso(rootfs, iso_path, version, packages):
    """An MLNX_OFED-layout ISO at iso_path (inside the rootfs), made by the rootfs's xorriso (Debian's).

    The layout follows MLNX_OFED's ISO for Debian/Ubuntu as NVIDIA's "Installing MLNX_OFED Using apt-get"
    describes it: the packages in DEBS/ as a flat repository (``deb file:<mount>/DEBS ./``), next to the
    mlnxofedinstall script and the .mlnx version file at the top. Synthetic: the packages (ofed() above)
    and mlnxofedinstall (a stand-in the role never runs: it installs with apt, pinned and held).
    """
    tree = rootfs.file("/srv/llmops-iso-tree")
    subprocess.run(["rm", "-rf", tree], check=True)
    build_repo(os.path.join(tree, "DEBS"), packages)
    with open(os.path.join(tree, ".mlnx"), "w") as handle:
        handle.write(version + "\n")
    with open(os.path.join(tree, "mlnxofedinstall"), "w") as handle:
        handle.write("#!/bin/sh\necho 'stand-in mlnxofedinstall (tests): install from DEBS/ with apt' >&2\nexit 1\n")
    os.chmod(os.path.join(tree, "mlnxofedinstall"), 0o755)
    label = "MLNX_OFED_LINUX-" + version
    result = rootfs.run(
        "xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-V", label[:32], "-o", iso_path, "/srv/llmops-iso-tree"
    )
    if result.returncode != 0:
        raise RuntimeError("xorriso failed: %s" % result.stderr)
    subprocess.run(["rm", "-rf", tree], check=True)
    return iso_path
