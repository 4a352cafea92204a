#!/usr/bin/env bash
# Run the export benchmarks that benchmarks/RESULTS.md records: the headline
# scenario (fastest of 3 runs), the page-size sweep with its plot, and four
# connectors side by side. Takes about six minutes on two cores.
# usage: benchmarks/run_export.sh [OUT_DIR]      (default: a new temporary folder)
# The interpreter is $PYTHON, else .venv/bin/python (see scripts/install).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
out="${1:-$(mktemp -d -t bulkflow-bench-XXXXXX)}"
mkdir -p "$out"

bench() {
    echo "+ bulkflow bench export $*" >&2
    "$python" -m bulkflow bench export "$@"
}

bench --rows 200000 --page-size 50000 --repeat 3 --json "$out/export.json"
bench --rows 200000 --page-sizes 1000,10000,50000,200000 --repeat 2 \
    --json "$out/sweep.json" --plot "$out/sweep.png"
bench --rows 200000 --page-size 50000 --connectors 4 --json "$out/connectors-4.json"
echo "results in $out" >&2
