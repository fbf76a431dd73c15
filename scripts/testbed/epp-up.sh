#!/usr/bin/env bash
# The routing test's parts, on demand (the other tests do not need them, and a cold build costs ~3 min of
# 2 cores): the endpoint picker (EPP) of the Gateway API Inference Extension and our ext_proc gateway built
# from testbed/go/epp, the EPP image (testbed/images/images.json "epp") imported into every real node's
# containerd once. Prints the gateway binary's path.
#   scripts/testbed/epp-up.sh            (after cluster-up; TESTBED_EPP_BUILD_ONLY=1 builds without a bed)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# one build at a time (scripts/test.sh starts one in the background; the routing test runs this too)
mkdir -p "$TESTBED_CACHE"
exec 9> "$TESTBED_CACHE/epp-up.lock"
flock 9
bash "$TESTBED_REPO_ROOT/scripts/testbed/build.sh" epp >&2
archive="$(python3 "$TESTBED_REPO_ROOT/scripts/testbed/image_build.py" epp)" || die "epp image build failed"
if [[ ${TESTBED_EPP_BUILD_ONLY:-0} != 1 ]]; then
  nodes=("$TESTBED_STATE"/nodes/llmops-real-*/)
  [[ -d ${nodes[0]} ]] || die "no real nodes under $TESTBED_STATE/nodes (make cluster-up)"
  for dir in "${nodes[@]}"; do import_image "${dir%/}" "$archive"; done
fi
echo "$TESTBED_BIN/llmops-extproc-gateway"
