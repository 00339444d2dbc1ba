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
#   bash tools/prior_study.sh niche                 # part 4: balanced, hard head, label noise
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
. tools/study_lib.sh  # study_sweep, variants

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
  niche)
    # Part 4, where difficulty and frequency disagree (CPU CIFAR-10-LT, ResNet-8, seeds 0-2):
    # a balanced subset of 1,000 images a class (Balanced Softmax is CE there); a tail whose
    # head holds the hardest classes (cat, dog, bird, deer); 30 % symmetric label noise on the
    # two head classes (airplane, automobile; training labels only).
    R='{loss.name: cdb-ce, loss.options: {defer_until: 13}}'
    study_sweep "$OUT/cifar10_niche_balanced" configs/cifar10_lt_cpu.yaml "$SEEDS" \
      'sweep.data.options.imbalance_factor=[1]' 'data.options.max_per_class=1000' \
      "sweep.variants=[{loss.name: ce}, {loss.name: focal, loss.options: {gamma: 1.0}}, {loss.name: cdb-ce}, $R]"
    V="sweep.variants=[{loss.name: ce}, {loss.name: balanced-softmax}, {loss.name: cdb-bs}, {loss.name: cdb-bs-offset}, $R]"
    study_sweep "$OUT/cifar10_niche_hard_head" configs/cifar10_lt_cpu.yaml "$SEEDS" \
      'sweep.data.options.imbalance_factor=[100]' 'data.options.class_order=[3,5,2,4,0,1,6,7,8,9]' "$V"
    study_sweep "$OUT/cifar10_niche_noise" configs/cifar10_lt_cpu.yaml "$SEEDS" \
      'sweep.data.options.imbalance_factor=[100]' 'data.options.label_noise=0.3' \
      'data.options.noisy_classes=[0,1]' "$V"
    ;;
  *) echo "usage: $0 screen | mnist 'VARIANTS' | cifar 'VARIANTS' | epochs | niche" >&2; exit 2 ;;
esac
