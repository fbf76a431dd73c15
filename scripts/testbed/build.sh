#!/usr/bin/env bash
# Build the test bed's upstream binaries from Go modules (pins: testbed/versions.env).
# One `go build` per wrapper module (testbed/go/<name>), so the packages they share are compiled
# once. Output: ~/.cache/llmops-inference/testbed/<name>-<key>/, rebuilt only when the key
# (go.mod, go.sum, pins, Go version, this script) changes; links in .build/testbed/bin.
# Usage: build.sh [module...]   (default: all of kubernetes kwok helm lws)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Published modules only, no cgo, no network except the module proxy, no toolchain switch.
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
# The compile cache sits beside the binaries so CI caches one directory (~/.cache/llmops-inference);
# an explicit GOCACHE wins.
export GOCACHE="${GOCACHE:-${LLMOPS_CACHE_DIR:-$HOME/.cache/llmops-inference}/go-build}"
command -v go >/dev/null || die "go not found; install Go >= 1.26 (the pinned kwok/helm/lws need it)"

# Fixed build metadata so the binaries are reproducible; the version fields matter:
# kube-apiserver's /version feeds kwokctl's flag selection and helm's .Capabilities.KubeVersion.
BUILD_DATE=1970-01-01T00:00:00Z
NO_COMMIT=0000000000000000000000000000000000000000
# kwok must use our local binaries; an attempted download fails on this URL instead of fetching.
NO_DOWNLOAD=http://no-download.invalid/testbed-uses-local-binaries

ldflags_for() {
  local flags="-s -w" p minor
  case $1 in
    kubernetes)
      minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        flags+=" -X $p.gitCommit=$NO_COMMIT -X $p.gitTreeState=clean -X $p.buildDate=$BUILD_DATE"
      done ;;
    kwok)
      p=sigs.k8s.io/kwok/pkg/consts
      flags+=" -X $p.Version=$KWOK_VERSION -X $p.KubeVersion=$KUBERNETES_VERSION"
      for var in BinaryPrefix KubeBinaryPrefix KubeBinaryUnofficialPrefix EtcdBinaryPrefix KectlBinaryPrefix; do
        flags+=" -X $p.$var=$NO_DOWNLOAD"
      done ;;
    helm)
      # helm reports the Kubernetes version of its client libraries as the default kubeVersion
      local client_go; client_go="$(cd "$TESTBED_GO_DIR/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)"
      minor="${client_go#v0.}"; minor="${minor%%.*}"
      p=helm.sh/helm/v3
      flags+=" -X $p/internal/version.version=$HELM_VERSION -X $p/internal/version.gitTreeState=clean"
      flags+=" -X $p/internal/version.gitCommit=$NO_COMMIT"
      flags+=" -X $p/pkg/lint/rules.k8sVersionMajor=1 -X $p/pkg/lint/rules.k8sVersionMinor=$minor"
      flags+=" -X $p/pkg/chartutil.k8sVersionMajor=1 -X $p/pkg/chartutil.k8sVersionMinor=$minor" ;;
    lws)
      p=sigs.k8s.io/lws/pkg/version
      flags+=" -X $p.GitVersion=$LWS_VERSION -X $p.GitCommit=$NO_COMMIT -X $p.BuildDate=$BUILD_DATE" ;;
    minio)
      # the pseudo-version's date and commit (MINIO_VERSION); the update URL goes nowhere
      local stamp commit date
      stamp="${MINIO_VERSION#v0.0.0-}"; commit="${stamp#*-}"; stamp="${stamp%%-*}"
      date="${stamp:0:4}-${stamp:4:2}-${stamp:6:2}T${stamp:8:2}:${stamp:10:2}:${stamp:12:2}Z"
      p=github.com/minio/minio/cmd
      flags+=" -X $p.Version=$date -X $p.ReleaseTag=DEVELOPMENT.${date//:/-} -X $p.CommitID=$commit"
      flags+=" -X $p.ShortCommitID=$commit -X $p.MinioReleaseBaseURL=$NO_DOWNLOAD/"
      commit="$(cd "$TESTBED_GO_DIR/minio" && go list -m -f '{{.Version}}' github.com/minio/mc)"
      flags+=" -X github.com/minio/mc/cmd.CommitID=${commit##*-}" ;;
    keda)
      p=github.com/kedacore/keda/v2/version
      flags+=" -X $p.Version=$KEDA_VERSION -X $p.GitCommit=$NO_COMMIT" ;;
    volcano)
      p=volcano.sh/volcano/pkg/version
      flags+=" -X $p.Version=$VOLCANO_VERSION -X $p.GitSHA=$NO_COMMIT -X $p.Built=$BUILD_DATE" ;;
  esac
  printf '%s' "$flags"
}

# Print a progress line every 100 compiled packages (go build -v lists each one) and pass errors through.
progress() {
  awk -v name="$1" '
    /^go: downloading / { d++; if (d == 1) { printf ">>> [testbed] %s: downloading modules\n", name; fflush() }; next }
    /^[^ \t]+$/ && !/^#/ { n++; if (n % 100 == 0) { printf ">>> [testbed] %s: %d packages compiled\n", name, n; fflush() }; next }
    { print; fflush() }
    END { printf ">>> [testbed] %s: %d modules downloaded, %d packages compiled\n", name, d, n }' >&2
}

build_module() {
  local name=$1 dir="$TESTBED_GO_DIR/$1" out tmp start pkgs
  # the key covers everything that decides the output: go.mod, go.sum, ldflags (pins), Go, this script
  # (our own modules, testbed/go/node and coredns's main.go, also have Go sources of their own)
  out="$TESTBED_CACHE/$name-$( { cat "$dir/go.mod" "$dir/go.sum" "$0"; find "$dir" -name '*.go' -type f | sort | xargs -r cat
    ldflags_for "$name"; go env GOVERSION GOOS GOARCH; } \
    | sha256sum | cut -c1-16)"
  if [[ -f $out/.complete ]]; then
    log "$name: cached ($out)"
  else
    # the main packages are the go.mod's tool directives
    pkgs="$(cd "$dir" && go mod edit -json \
      | python3 -c 'import json, sys; print(" ".join(t["Path"] for t in json.load(sys.stdin)["Tool"]))')"
    log "$name: building $pkgs"
    start=$SECONDS
    tmp="$out.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    # shellcheck disable=SC2086  # pkgs is a list of package paths
    (cd "$dir" && go build -v -trimpath -ldflags "$(ldflags_for "$name")" -o "$tmp/" $pkgs 2>&1) | progress "$name"
    # main packages named after their directory: give them their real names
    [[ -f $tmp/server ]] && mv "$tmp/server" "$tmp/etcd"
    [[ -f $tmp/cmd ]] && mv "$tmp/cmd" "$tmp/lws-controller"
    [[ -f $tmp/scheduler ]] && mv "$tmp/scheduler" "$tmp/vc-scheduler"
    [[ -f $tmp/operator ]] && mv "$tmp/operator" "$tmp/keda-operator"
    [[ -f $tmp/adapter ]] && mv "$tmp/adapter" "$tmp/keda-adapter"
    touch "$tmp/.complete"
    rm -rf "$out" && mv "$tmp" "$out"
    log "$name: built in $((SECONDS - start))s -> $out"
  fi
  mkdir -p "$TESTBED_BIN"
  local bin
  for bin in "$out"/*; do ln -sfn "$bin" "$TESTBED_BIN/$(basename "$bin")"; done
}

check_pins() {
  local name=$1 module version got
  case $name in
    kubernetes) module=k8s.io/kubernetes version=$KUBERNETES_VERSION ;;
    kwok) module=sigs.k8s.io/kwok version=$KWOK_VERSION ;;
    helm) module=helm.sh/helm/v3 version=$HELM_VERSION ;;
    lws) module=sigs.k8s.io/lws version=$LWS_VERSION ;;
    volcano) module=volcano.sh/volcano version=$VOLCANO_VERSION ;;
    coredns) module=github.com/coredns/coredns version=$COREDNS_VERSION ;;
    minio) module=github.com/minio/minio version=$MINIO_VERSION ;;
    epp) module=sigs.k8s.io/gateway-api-inference-extension version=$GIEX_VERSION ;;
    keda) module=github.com/kedacore/keda/v2 version=$KEDA_VERSION ;;
    *) return 0 ;;  # our own code (testbed/go/node): nothing pinned
  esac
  got="$(cd "$TESTBED_GO_DIR/$name" && go list -m -f '{{.Version}}' "$module")"
  [[ $got == "$version" ]] \
    || die "testbed/go/$name/go.mod has $module $got, testbed/versions.env pins $version; run scripts/testbed/gen-gomod.sh $name"
}

modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=("${TESTBED_MODULES[@]}")
total_start=$SECONDS
for name in "${modules[@]}"; do
  [[ -d $TESTBED_GO_DIR/$name ]] || die "unknown module '$name' (have: ${TESTBED_MODULES[*]} ${TESTBED_OPTIONAL_MODULES[*]} ${TESTBED_NODE_MODULES[*]})"
  check_pins "$name"
  build_module "$name"
done
log "all binaries ready in $((SECONDS - total_start))s: $TESTBED_BIN"
