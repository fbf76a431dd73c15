#!/usr/bin/env bash
# Generate the plugin and role reference (docs/reference/*.rst) from the DOCUMENTATION of every module
# and filter and the argument specs of every role, with antsibull-docs (pinned in requirements-test.txt).
#   scripts/docs_reference.sh            regenerate docs/reference
#   scripts/docs_reference.sh DEST_DIR   write somewhere else (tests/unit/test_docs_reference.py compares)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections
dest=${1:-$ROOT/docs/reference}
mkdir -p "$dest"
# antsibull-docs refuses a destination others can write to
chmod 755 "$dest"
# --no-add-antsibull-docs-version and a fixed layout keep the output byte-for-byte reproducible;
# --cleanup everything drops pages of plugins that no longer exist.
antsibull-docs collection --use-current --fail-on-error --squash-hierarchy --no-add-antsibull-docs-version \
  --output-format simplified-rst --cleanup everything --dest-dir "$dest" llmops.inference >/dev/null
