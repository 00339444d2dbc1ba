#!/bin/bash
# Difficulty on top of the prior (docs/results/prior_study.md): CDB's difficulty added to Balanced
# Softmax as a logit offset, deferred, or as the CDB-S sampler, against Balanced Softmax, CE,
# LDAM-DRW and DBM (the published difficulty-over-Balanced-Softmax margin loss).
# Resumable: each data set's finished runs are kept in results/prior_study/<data set>/runs.jsonl.gz
# (expanded before a sweep, so the sweep skips them; packed after it). The baselines' runs are the
# long-tail study's (results/longtail_study), paired by seed and factor. Usage:
#   bash tools/prior_study.sh screen                # every candidate on Fashion-MNIST-LT
#   bash tools/prior_study.sh mnist 'V1, V2'        # chosen candidates (on validation) on MNIST-LT
#   bash tools/prior_study.sh cifar 'V1, V2'   # chosen candidates on the CPU CIFAR-10-LT
#   bash tools/prior_study.sh epochs                # part 3: CE, BS, LDAM-DRW at 32 and 64 epochs
#   python -m cdbloss.lab.experiments.prior_tables --out results/prior_study/tables.md
# Factors 100 and 10, seeds 0-2 (SEED_LIST=0 FACTOR_LIST=100 narrow them). CLI overrides the python
# that runs the sweeps; WORKERS the worker count.
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${CLI:-.venv/bin/python -m cdbloss}
OUT=${OUT:-results/prior_study}
WORKERS=${WORKERS:-2}
SEEDS="sweep.seed=[${SEED_LIST:-0,1,2}]"
FACTORS="sweep.data.options.imbalance_factor=[${FACTOR_LIST:-100,10}]"

# The candidates; D is the epoch of the first learning-rate decay (24 of 30 on the MNIST sets,
# 13 of 16 on the CPU CIFAR-10-LT), where the deferred forms switch their difficulty on.
candidates() {
  local D=$1
  cat <<LIST
{loss.name: cdb-bs-offset},
{loss.name: cdb-bs-offset, loss.options: {offset_scale: 0.5}},
{loss.name: cdb-bs-offset, loss.options: {defer_until: $D}},
{loss.name: balanced-softmax, train.sampler: cdb},
{loss.name: dbm-bs, model.options: {normed_linear: true}}
LIST
}
# study_sweep OUT_FOLDER ARGS...: expand OUT_FOLDER's store, run the sweep, pack the finished runs back
study_sweep() {
  local out=$1 status=0
  shift
  mkdir -p "$out"
  if [ -f "$out/runs.jsonl.gz" ]; then $CLI results expand "$out/runs.jsonl.gz"; fi
  $CLI sweep "$@" --workers "$WORKERS" --out "$out" || status=$?
  if compgen -G "$out/*/result.json" >/dev/null; then $CLI results pack "$out"; fi
  return $status
}
variants() { echo "sweep.variants=[$(tr -d '\n' <<<"$1")]"; }

case "${1:-}" in
  screen)
    study_sweep "$OUT/fashion_mnist_lt" configs/fashion_mnist_lt.yaml "$SEEDS" "$(variants "$(candidates 24)")" "$FACTORS"
    ;;
  mnist)
    V=$(variants "${2:?give the chosen variants, as in candidates(), with D=24}")
    study_sweep "$OUT/mnist_lt" configs/mnist_lt.yaml "$SEEDS" "$V" "$FACTORS"
    ;;
  cifar)
    V=$(variants "${2:?give the chosen variants, as in candidates(), with D=13}")
    study_sweep "$OUT/cifar10_lt_cpu" configs/cifar10_lt_cpu.yaml "$SEEDS" "$V" "$FACTORS"
    ;;
  epochs)
    study_sweep "$OUT/cifar10_lt_cpu_epochs" configs/cifar10_lt_cpu_epochs.yaml
    ;;
  *) echo "usage: $0 screen | mnist 'VARIANTS' | cifar 'VARIANTS' [FACTORS] | epochs" >&2; exit 2 ;;
esac
