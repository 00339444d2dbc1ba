#!/bin/bash
# The long-tail study of CDB settings (docs/results/longtail_study.md).
# Resumable: each data set's finished runs are kept in results/longtail_study/<data set>/runs.jsonl.gz.
# Before a sweep the store is expanded into run folders there, so the sweep skips the finished runs;
# after it every finished run folder is packed into the store (run folders stay git-ignored). Usage:
#   bash tools/longtail_study.sh stage1            # every candidate on MNIST-LT and Fashion-MNIST-LT
#   bash tools/longtail_study.sh stage1 fashion_mnist_lt 'V1, V2'   # one data set, chosen candidates
#   bash tools/longtail_study.sh stage2 'V1, V2'   # chosen candidates (on validation) on the CPU CIFAR-10-LT
#   bash tools/longtail_study.sh baselines         # the CE / Balanced Softmax / LDAM-DRW seeds the older grids lack
#   bash tools/longtail_study.sh recipe            # the CE-base recipe, plain and deferred, on the CPU CIFAR-10-LT
#   bash tools/longtail_study.sh four-nine         # the recipes on MNIST 4-vs-9 at ratio 0.995 (Table 1 protocol)
#   python tools/longtail_choose.py --out results/longtail_study/tables.md   # then the tables
# Factors 100 and 10, seeds 0-2. CLI overrides the python that runs the sweeps.
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${CLI:-.venv/bin/python -m cdbloss}
OUT=${OUT:-results/longtail_study}
SEEDS='sweep.seed=[0,1,2]'
FACTORS='sweep.data.options.imbalance_factor=[100,10]'

# The candidates; D is the epoch of the first learning-rate decay (24 of 30 on the MNIST sets,
# 13 of 16 on the CPU CIFAR-10-LT), where the deferred forms switch their weights on.
candidates() {
  local D=$1
  cat <<LIST
{loss.name: cdb-ce-authors},
{loss.name: cdb-ce, loss.options: {tau: dynamic, defer_until: $D}},
{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10}},
{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10, defer_until: $D}},
{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10, source: train}},
{loss.name: cdb-bs, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10}},
{loss.name: cdb-bs, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10, defer_until: $D}}
LIST
}
. tools/study_lib.sh  # study_sweep, variants

case "${1:-}" in
  stage1)
    V=$(variants "${3:-$(candidates 24)}")
    for d in ${2:-mnist_lt fashion_mnist_lt}; do
      study_sweep "$OUT/$d" configs/$d.yaml "$SEEDS" "$V" "$FACTORS"
    done
    ;;
  stage2)
    V=$(variants "${2:?give the chosen variants, as in candidates(), with D=13}")
    study_sweep "$OUT/cifar10_lt_cpu" configs/cifar10_lt_cpu.yaml "$SEEDS" "$V" "$FACTORS"
    ;;
  baselines)
    LD24='{loss.name: ldam-drw, loss.options: {drw_epoch: 24}, model.options: {normed_linear: true}}'
    LD13='{loss.name: ldam-drw, loss.options: {drw_epoch: 13}, model.options: {normed_linear: true}}'
    for d in mnist_lt fashion_mnist_lt; do
      study_sweep "$OUT/$d" configs/$d.yaml 'sweep.seed=[1,2]' "sweep.variants=[$LD24]" "$FACTORS"
    done
    study_sweep "$OUT/cifar10_lt_cpu" configs/cifar10_lt_cpu.yaml 'sweep.seed=[2]' 'sweep.variants=[{loss.name: ce}, {loss.name: balanced-softmax}]' "$FACTORS"
    study_sweep "$OUT/cifar10_lt_cpu" configs/cifar10_lt_cpu.yaml 'sweep.seed=[1,2]' "sweep.variants=[$LD13]" "$FACTORS"
    ;;
  recipe)
    R='{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10}}'
    RD='{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10, defer_until: 13}}'
    study_sweep "$OUT/cifar10_lt_cpu_default" configs/cifar10_lt_cpu.yaml "$SEEDS" "sweep.variants=[$R]" "$FACTORS"
    study_sweep "$OUT/cifar10_lt_cpu_default" configs/cifar10_lt_cpu.yaml "$SEEDS" "sweep.variants=[$RD]" "$FACTORS"
    ;;
  four-nine)
    R='{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10}}'
    B='{loss.name: cdb-bs, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10}}'
    RD='{loss.name: cdb-ce, loss.options: {tau: dynamic-sigmoid, eps: 0.01, momentum: 0.9, max_ratio: 10, defer_until: 240}}'
    RATIO='sweep.data.options.ratio=[0.995]'
    study_sweep "$OUT/mnist_4v9" configs/mnist_4v9_table1.yaml "$SEEDS" "sweep.variants=[$R]" "$RATIO"
    study_sweep "$OUT/mnist_4v9" configs/mnist_4v9_table1.yaml "$SEEDS" "sweep.variants=[$B, $RD]" "$RATIO"
    ;;
  *) echo "usage: $0 stage1 | stage2 'VARIANTS' | baselines | recipe | four-nine" >&2; exit 2 ;;
esac
