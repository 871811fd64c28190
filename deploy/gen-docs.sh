#!/usr/bin/env bash
# Regenerates docs/jobspec.md: the hand-written introduction
# (docs/jobspec.intro.md) followed by `rivulet doc` (the config tables of
# the job and of every source, operator and sink).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${RIVULET:-build/cli/rivulet}"
{ cat docs/jobspec.intro.md; echo; "$bin" doc; } > docs/jobspec.md
echo "wrote docs/jobspec.md"
