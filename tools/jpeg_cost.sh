#!/bin/bash
# What the JPEG copy of CIFAR-10 costs (docs/results/jpeg_cost.md): CE and Balanced Softmax on
# the CPU CIFAR-10-LT at factor 100, seeds 0-2, trained on the JPEG and on the lossless copy
# (configs/cifar10_lt_cpu_jpeg_cost.yaml, 12 runs of about 5 min each on 2 cores).
# Resumable: the finished runs are kept in results/cifar10_lt_cpu_jpeg_cost/runs.jsonl.gz; the
# store is expanded before the sweep (which skips finished runs) and packed after it; then
# the table: python -m cdbloss.lab.experiments.jpeg_cost STORE --out $OUT/table.md
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CLI="$PY -m cdbloss"
OUT=${OUT:-results/cifar10_lt_cpu_jpeg_cost}
if [ -f "$OUT/runs.jsonl.gz" ]; then $CLI results expand "$OUT/runs.jsonl.gz"; fi
status=0
$CLI sweep configs/cifar10_lt_cpu_jpeg_cost.yaml --workers 2 --out "$OUT" || status=$?
if compgen -G "$OUT/*/result.json" >/dev/null; then $CLI results pack "$OUT"; fi
$PY -m cdbloss.lab.experiments.jpeg_cost "$OUT/runs.jsonl.gz" --out "$OUT/table.md"
exit $status
