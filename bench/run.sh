#!/usr/bin/env bash
# Runs every bench/bench_*.py in turn (each prints its figures and writes them under bench/out/).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
status=0
for script in bench/bench_*.py; do
  echo "== $script" >&2
  python "$script" || { echo "benchmark failed: $script" >&2; status=1; }
done
exit $status
