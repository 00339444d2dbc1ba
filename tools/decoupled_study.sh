#!/bin/bash
# Decoupled and two-stage baselines (issue 32; docs/results/decoupled.md) on the long-tail study's
# CPU tails: stage-1 CE runs (checkpoints kept), then from each of them cRT, LWS, tau-normalisation,
# post-hoc logit adjustment, and weight balancing (stage-1 weight decay x MaxNorm threshold).
# Every knob is chosen on the validation split by tools/decoupled_table.py; the test split is
# evaluated once per final model. Resumable: the sweep skips finished runs and resumes stopped ones
# from their checkpoints; finished runs are packed into results/decoupled_study/<data set>/runs.jsonl.gz.
# Keep the run folders (git-ignored) until every stage-2 run is done: stage 2 needs the stage-1
# checkpoint.pt, which the store does not hold. Usage:
#   bash tools/decoupled_study.sh                        # all three data sets
#   bash tools/decoupled_study.sh fashion_mnist_lt       # one (mnist_lt, fashion_mnist_lt, cifar10_lt_cpu)
#   SEEDS='[0]' FACTORS='[100]' bash tools/decoupled_study.sh mnist_lt   # part of the grid
#   python tools/decoupled_table.py --out results/decoupled_study/tables.md   # then the tables
# CLI overrides the python that runs the sweeps; WORKERS the sweep's worker processes (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/study_lib.sh  # study_sweep (its variants is replaced below)
CLI=${CLI:-.venv/bin/python -m cdbloss}
OUT=${OUT:-results/decoupled_study}
SEEDS=${SEEDS:-[0,1,2]}
FACTORS=${FACTORS:-[100,10]}
WORKERS=${WORKERS:-1}
E=5  # stage-2 epochs of cRT, LWS and weight balancing; the epoch itself is chosen on validation

# Stage 1: CE at the config's weight decay (5e-4, the CE baseline and the start of cRT, LWS,
# tau-norm and logit adjustment), and at 4x and 10x it: weight balancing's stage-1 knob.
WDS="0.002 0.005"
MAX_NORMS="0.5 1.0"  # weight balancing's MaxNorm thresholds (LeNet-5's CE rows have norms 1.1-1.7)
variants() {
  local v="{loss.name: ce}"
  for wd in $WDS; do v="$v, {loss.name: ce, optim.weight_decay: $wd}"; done
  v="$v, {loss.name: ce, stage2.method: crt, stage2.epochs: $E}"
  v="$v, {loss.name: ce, stage2.method: lws, stage2.epochs: $E}"
  v="$v, {loss.name: ce, stage2.method: tau-norm}"
  v="$v, {loss.name: ce, stage2.method: logit-adjust}"
  for mn in $MAX_NORMS; do
    v="$v, {loss.name: ce, stage2.method: wb, stage2.epochs: $E, stage2.max_norm: $mn}"
    for wd in $WDS; do
      v="$v, {loss.name: ce, optim.weight_decay: $wd, stage2.method: wb, stage2.epochs: $E, stage2.max_norm: $mn}"
    done
  done
  echo "sweep.variants=[$v]"
}

for d in ${1:-fashion_mnist_lt mnist_lt cifar10_lt_cpu}; do
  study_sweep "$OUT/$d" "configs/$d.yaml" "sweep.seed=$SEEDS" "$(variants)" \
    "sweep.data.options.imbalance_factor=$FACTORS" train.progress=false
done
