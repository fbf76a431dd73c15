#!/usr/bin/env bash
# Everything CI runs, in order: lint, ansible-test sanity, test bed + molecule, then pytest
# (unit + integration) last, so its summary line is the last thing printed.
#   scripts/test.sh            all stages
#   scripts/test.sh STAGE...   only the named stages: lint sanity testbed molecule tests unit integration
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
export PATH=$BIN:$PATH
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
export PY_COLORS=0

stages=("$@")
# At exit: background test runs still going (a stage failed) are stopped; a bed this run started is stopped.
stop_bed_at_exit=0
on_exit() {
  local pid
  for pid in ${off_bed_pid:-} ${bare_metal_pid:-} ${side_builds_pid:-}; do kill -0 "$pid" 2>/dev/null && pkill -TERM -P "$pid" 2>/dev/null; done
  if [ "$stop_bed_at_exit" = 1 ]; then bash scripts/testbed/cluster-down.sh > "$ROOT/.build/testbed-down.log" 2>&1; fi
  return 0
}
trap on_exit EXIT
[ ${#stages[@]} -gt 0 ] || stages=(lint sanity testbed molecule tests)
step() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

run_lint() {
  step "yamllint"
  yamllint --strict .
  step "ruff"
  ruff check .
  ruff format --check --diff .
  step "antsibull-changelog lint"
  antsibull-changelog lint
  step "antsibull-docs lint (plugin DOCUMENTATION, filter sidecars, role argument specs)"
  antsibull-docs lint-collection-docs --plugin-docs .
  step "ansible-lint (production profile)"
  # ansible-lint keeps a copy of this collection under .ansible/, and molecule's prerun may install
  # one under ~/.ansible/collections; a stale copy shadows this tree's new roles and modules.
  rm -rf .ansible/collections/ansible_collections/llmops "$HOME/.ansible/collections/ansible_collections/llmops"
  ansible-lint --profile production --offline
}

# ansible-test wants the collection at .../ansible_collections/<ns>/<name> as a real directory, and
# skips everything when that path has a hidden folder in it (so not under .build/): copy the files
# git knows about (tracked and untracked-but-not-ignored) into a scratch folder.
run_sanity() {
  step "ansible-test sanity"
  # ansible-test's shellcheck test is skipped without the tool; install it from Debian when we can.
  if ! command -v shellcheck >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq shellcheck) >/dev/null 2>&1 || echo "WARNING: could not install shellcheck"
  fi
  local dest=${TMPDIR:-/tmp}/llmops-inference-sanity/ansible_collections/llmops/inference
  rm -rf "$dest" && mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done \
    | tar --null -T - -cf - | tar -xf - -C "$dest"
  local pip_version cache
  pip_version=$(python - <<'PY'
import re, ansible_test, pathlib
text = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", text).group(1))
PY
)
  cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
  mkdir -p "$(dirname "$cache")" && cp scripts/ansible_test_get_pip.py "$cache"
  (cd "$dest" && ansible-test sanity --venv --python 3.11 --color no)
}

# The Kubernetes test bed (docs/testing.md): built from Go modules on first use (cached in
# ~/.cache/llmops-inference), reused when already up. A cluster this script started is stopped on exit;
# one a developer brought up before is left running.
TESTBED_KUBECONFIG=$ROOT/.state/testbed/kubeconfig
run_testbed() {
  step "test bed up (real control plane, kwok GPU nodes, real kubelet nodes, LWS controller, Volcano scheduler)"
  # quietly, so pytest's summary stays the last line printed; the log says what was stopped
  [ -e "$TESTBED_KUBECONFIG" ] || stop_bed_at_exit=1
  # helm is not part of the cluster, but the add-on roles' live tests drive it
  bash scripts/testbed/build.sh helm
  TESTBED_VOLCANO=${TESTBED_VOLCANO:-1} bash scripts/testbed/cluster-up.sh
  # The routing test's endpoint picker (~3 min of 2 cores to build cold): built in the background beside
  # molecule, so the test finds it ready; the test runs the same script, which waits for this build.
  # Then the autoscaling loop test's KEDA (~8 min of 2 cores cold, niced) and Prometheus, the same way.
  (
    TESTBED_EPP_BUILD_ONLY=1 bash scripts/testbed/epp-up.sh > "$ROOT/.build/epp-build.log" 2>&1
    TESTBED_KEDA_BUILD_ONLY=1 nice -n 10 bash scripts/testbed/keda-up.sh > "$ROOT/.build/keda-build.log" 2>&1
  ) &
  side_builds_pid=$!
}

# CI shows only the end of the output, and molecule's summary does not say which task failed: on a failure, the
# failed tasks' lines are printed again last (the whole output is in .build/molecule.log).
run_molecule() {
  step "molecule"
  local log=$ROOT/.build/molecule.log rc=0
  mkdir -p "$ROOT/.build"
  molecule test --all 2>&1 | tee "$log" || rc=$?
  [ "$rc" -eq 0 ] && return 0
  step "molecule failed (rc=$rc); the failed tasks (whole output: .build/molecule.log)"
  sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E -A3 '^(fatal|failed):|Idempotence test failed' | cut -c1-800 | tail -20
  return "$rc"
}

# Debian tools the live tests drive for real (fabric_check pings across network namespaces, the bare-metal
# roles run in a debootstrap root filesystem): installed when
# missing and we are root; a test that still lacks one fails under CI instead of skipping.
ensure_debian_tools() {  # ensure_debian_tools command:package ...
  local wanted=() pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || wanted+=("${pair#*:}"); done
  [ ${#wanted[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  (apt-get update -qq && apt-get install -y -qq "${wanted[@]}") >/dev/null 2>&1 || echo "WARNING: could not install ${wanted[*]}"
}

# Every pytest run here loads tests/skip_policy.py: a skip fails the run (a live part did not start).
run_pytest() {
  PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" python -m pytest -q -p no:cacheprovider -p skip_policy --durations=15 "$@"
}
# Two pytest runs side by side, one per core: the tests marked `testbed` (tests/integration/conftest.py: they share
# the bed's few real-node GPUs and cluster-wide add-ons) one after another, in the foreground; everything else
# (unit tests, renders: mostly ansible-playbook runs) in the background, its report printed afterwards, then one
# line with both results. With every stage (CI) the background run starts right after sanity, beside the bed's
# start and molecule. (pytest-xdist's --dist loadgroup cannot group them: with pytest 9.2 its group suffix on
# node ids no longer takes.) PYTEST_SPLIT=0 runs one pytest.
OFF_BED_LOG=$ROOT/.build/pytest-off-bed.log
off_bed_pid="" off_bed_base="" off_bed_rc=0
start_off_bed_tests() {  # start_off_bed_tests PYTEST_ARGS...
  ensure_debian_tools ping:iputils-ping ip:iproute2 debootstrap:debootstrap
  mkdir -p "$ROOT/.build"
  off_bed_base=$(mktemp -d "${TMPDIR:-/tmp}/llmops-pytest-off-bed-XXXXXX")
  step "pytest -m 'not testbed' (unit tests, renders), in the background (log: .build/pytest-off-bed.log)"
  (run_pytest -m "not testbed" --basetemp="$off_bed_base" "$@" > "$OFF_BED_LOG" 2>&1) &
  off_bed_pid=$!
}
finish_off_bed_tests() {
  [ -n "$off_bed_pid" ] || return 0
  wait "$off_bed_pid" || off_bed_rc=$?
  step "pytest -m 'not testbed' (ran in the background; log .build/pytest-off-bed.log)"
  cat "$OFF_BED_LOG"
  rm -rf "$off_bed_base"
  off_bed_pid=""
  # 5: nothing selected
  [ "$off_bed_rc" -eq 5 ] && off_bed_rc=0
  return 0
}
run_pytest_split() {
  [ "${PYTEST_SPLIT:-1}" = 1 ] || { run_pytest "$@"; return; }
  [ -n "$off_bed_pid" ] || start_off_bed_tests "$@"
  local rc=0
  run_pytest -m testbed "$@" || rc=$?
  finish_off_bed_tests
  # 5: nothing selected (a run of the unit tests alone has no testbed test)
  [ "$rc" -eq 5 ] && rc=0
  echo "pytest: the test bed tests rc=$rc, the others rc=$off_bed_rc"
  [ "$rc" -eq 0 ] && [ "$off_bed_rc" -eq 0 ]
}

# The bare-metal roles' tests (a debootstrap root filesystem, real apt/dnf; no test bed) take the longest
# and mostly wait on package downloads and dpkg: with every stage (CI), they run in the background from
# the start, beside lint, sanity, the test bed's start and molecule, and their report is printed before the
# main pytest run, so its summary stays the last line.
BARE_METAL_TESTS=tests/integration/bare_metal
BARE_METAL_LOG=$ROOT/.build/pytest-bare-metal.log
bare_metal_pid="" bare_metal_base=""
unmount_below() {  # unmount_below DIR: every mount under DIR, deepest first
  findmnt -rn -o TARGET | grep "^$1/" | sort -r | xargs -r umount -l || true
}
start_bare_metal_tests() {
  [ -d "$BARE_METAL_TESTS" ] || return 0
  ensure_debian_tools debootstrap:debootstrap
  mkdir -p "$ROOT/.build"
  step "pytest $BARE_METAL_TESTS, in the background (log: .build/pytest-bare-metal.log)"
  # A folder of its own (pytest's numbered folders are shared with the main run). A run that was killed leaves
  # its rootfs mounts (proc, the apt cache) behind: unmount them, so no cleanup ever deletes through them.
  # Earlier runs' folders (a few GB of unpacked root filesystems each) go too.
  local parent=${TMPDIR:-/tmp}/llmops-pytest-bare-metal
  mkdir -p "$parent"
  unmount_below "$parent"
  rm -rf "$parent"/run-*
  bare_metal_base=$(mktemp -d "$parent/run-XXXXXX")
  (run_pytest --basetemp="$bare_metal_base/tmp" "$BARE_METAL_TESTS" > "$BARE_METAL_LOG" 2>&1) &
  bare_metal_pid=$!
}
bare_metal_rc=0
finish_bare_metal_tests() {
  [ -n "$bare_metal_pid" ] || return 0
  step "pytest $BARE_METAL_TESTS (started in the background)"
  wait "$bare_metal_pid" || bare_metal_rc=$?
  cat "$BARE_METAL_LOG"
  unmount_below "$bare_metal_base"
  rm -rf "$bare_metal_base"
}

# What the tests stage runs: unit + integration, less the bare-metal tests when they run in the background.
pytest_paths() {
  printf '%s\n' tests/unit
  [ -d tests/integration ] && printf '%s\n' tests/integration
  [ -n "$bare_metal_pid" ] && printf '%s\n' "--ignore=$BARE_METAL_TESTS"
  return 0
}

run_tests() {
  finish_bare_metal_tests
  step "pytest -m testbed (the tests on the shared test bed)"
  ensure_debian_tools ping:iputils-ping ip:iproute2 debootstrap:debootstrap
  local args rc=0
  mapfile -t args < <(pytest_paths)
  run_pytest_split "${args[@]}" || rc=$?
  [ "$rc" -ne 0 ] && return "$rc"
  if [ "$bare_metal_rc" -ne 0 ]; then
    echo "the bare-metal tests failed (report above, .build/pytest-bare-metal.log)"
    return "$bare_metal_rc"
  fi
}

# Every stage (CI): the bare-metal tests run beside the others from the start.
if [ $# -eq 0 ]; then start_bare_metal_tests; fi

for stage in "${stages[@]}"; do
  case $stage in
    lint) run_lint ;;
    sanity)
      run_sanity
      # every stage (CI): the tests that need no bed start now, beside the bed's start and molecule
      if [ $# -eq 0 ] && [ "${PYTEST_SPLIT:-1}" = 1 ]; then
        mapfile -t early < <(pytest_paths)
        start_off_bed_tests "${early[@]}"
      fi
      ;;
    molecule) run_molecule ;;
    testbed) run_testbed ;;
    tests) run_tests ;;
    unit) run_pytest tests/unit ;;
    integration) ensure_debian_tools ping:iputils-ping ip:iproute2 debootstrap:debootstrap; run_pytest_split tests/integration ;;
    *) echo "unknown stage: $stage (lint sanity testbed molecule tests unit integration)" >&2; exit 2 ;;
  esac
done
