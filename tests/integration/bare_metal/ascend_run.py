"""Stand-ins for Huawei's Ascend HDK .run installers (driver and firmware).

Why: Huawei's packages need an account to download and NPU hardware to install. The stand-in follows the
documented CLI (`--check`, `--full`, `--upgrade`, `--install-for-all`, `--install-path=`, `--quiet`) and
writes the documented `<install-path>/{driver,firmware}/version.info` (`Version=` first). It is stricter
than needed: `--full` over an installed package and `--upgrade` with nothing installed fail, the driver
fails without the HwHiAiUser user (as the real one does), so a role asking wrongly is caught. Every run is
appended to `<component>/install.log` for the tests to count.
"""

import os

TEMPLATE = r"""#!/bin/sh
COMPONENT=%(component)s
VERSION=%(version)s
action="" path=/usr/local/Ascend all=0
for arg; do
  case "$arg" in
    --check) echo "Verifying archive integrity...  100%%   All good." ;;
    --full|--upgrade) action=${arg#--} ;;
    --install-for-all) all=1 ;;
    --quiet) ;;
    --install-path=*) path=${arg#*=} ;;
    *) echo "[ERROR]unknown option $arg" >&2; exit 1 ;;
  esac
done
[ -n "$action" ] || exit 0
if [ "$COMPONENT" = firmware ] && [ $all = 1 ]; then echo "[ERROR]--install-for-all is a driver option" >&2; exit 1; fi
if [ "$COMPONENT" = driver ] && ! id HwHiAiUser >/dev/null 2>&1; then
  echo "[ERROR]The user HwHiAiUser does not exist, create it first" >&2; exit 1
fi
info="$path/$COMPONENT/version.info"
if [ $action = full ] && [ -f "$info" ]; then echo "[ERROR]$COMPONENT is installed, use --upgrade" >&2; exit 1; fi
if [ $action = upgrade ] && [ ! -f "$info" ]; then echo "[ERROR]$COMPONENT is not installed, use --full" >&2; exit 1; fi
mkdir -p "$path/$COMPONENT"
if [ "$COMPONENT" = driver ]; then
  printf 'Version=%%s\nascendhal_version=7.35.23\npackage_version=%%s\n' "$VERSION" "$VERSION" > "$info"
else
  printf 'Version=%%s\nfirmware_version=1.0\npackage_version=24.1.0\n' "$VERSION" > "$info"
fi
echo "$action $VERSION all=$all" >> "$path/$COMPONENT/install.log"
echo "$COMPONENT $VERSION $action done, reboot to take effect"
"""


def write_run(folder, component, version):
    """Write Ascend-hdk-910b-npu-<component>_<version>_linux-aarch64.run into folder; returns its name."""
    name = "Ascend-hdk-910b-npu-%s_%s_linux-aarch64.run" % (component, version)
    path = os.path.join(folder, name)
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(TEMPLATE % {"component": component, "version": version})
    os.chmod(path, 0o755)
    return name
