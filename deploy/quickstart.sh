#!/usr/bin/env bash
# Installs dependencies, builds Rivulet and runs examples/quickstart.yaml on
# the embedded mini-cluster, printing its results.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/build.sh build
echo "== rivulet plan examples/quickstart.yaml"
build/cli/rivulet plan examples/quickstart.yaml
echo "== rivulet run examples/quickstart.yaml"
build/cli/rivulet run examples/quickstart.yaml
