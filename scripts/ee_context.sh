#!/usr/bin/env bash
# Write the execution environment's build context into .build/ee (or $1): a fresh collection tarball in
# .build/dist (only one, so the Containerfile's glob installs exactly it), then `ansible-builder create`.
# Build the image from it where a container engine and the base image's registry are reachable:
#   podman build -f .build/ee/Containerfile -t <registry>/llmops/inference-ee:<version> .build/ee
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
context=${1:-.build/ee}
rm -rf .build/dist && mkdir -p .build/dist
ansible-galaxy collection build --force --output-path .build/dist . >/dev/null
ansible-builder create -f execution-environment.yml -c "$context" --output-filename Containerfile >/dev/null
echo "$context"
