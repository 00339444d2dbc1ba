#!/usr/bin/env bash
# Fused sweeps on a lent GPU, as one call of the `device` tool (issue 20), in this order:
#   1. the fused tests on the GPU (tests/lab/engine/test_fused.py; log: fused_tests.log);
#   2. benchmarks/fused_sweep.py: images/s of K fused ResNet-32 runs against one run,
#      K = 1, 4, 11, 22 (fused_bench.log, fused_bench.json);
#   3. the 22-run CIFAR-10-LT grid (configs/cifar10_lt.yaml, one seed, both factors) with
#      `cdbloss sweep --fuse`: two fused groups of 10 (one a factor) and the two LDAM-DRW runs
#      (their cosine head is another model) beside them, through the pack launcher
#      (`--launcher pack`, docs/engine.md): at most GROUP_WORKERS jobs (a fused group is one)
#      at once, each admitted only while the measured pace says all end before BUDGET seconds
#      are up; the jobs still going then stop with their checkpoints (a later call resumes
#      them), and pack.json logs the launches and stops.
# Back in $OUT: the logs, fused_bench.json, cifar10_lt_fused_results.tgz (result.json,
# config.json, metrics.jsonl, error.json of every run folder, sweep.json and pack.json) and, with
# CHECKPOINTS=1, the checkpoints of runs stopped at the deadline as
# cifar10_lt_fused_checkpoints.tar.part-* (15 MiB pieces; a ResNet-32 checkpoint is ~6 MB).
#
# The GPU machine has torch but not this package and reaches no network: it runs from src/
# and reads the CIFAR-10 JPEG zip from .device/ (prepared as tools/device_cifar10_lt.sh
# says: mkdir -p .device/cifar10-jpeg && cp ../shared/data/cifar10-jpeg/* .device/cifar10-jpeg/,
# and /.device/ in .git/info/exclude). The call:
#   run(command="bash tools/device_fused.sh", carry=[".device"], timeout_s=598)
# Unpack here with
#   mkdir -p runs/cifar10_lt_fused && tar xzf <files_at>/cifar10_lt_fused_results.tgz -C runs/cifar10_lt_fused
# A second call on the warm machine resumes the stopped runs (same RESULTS folder there).
#
# Knobs (environment): BUDGET (seconds for the whole call, default 582), RESULTS (the sweep
# folder, default runs/cifar10_lt_fused), CONFIG (default configs/cifar10_lt.yaml),
# BENCH_ARGS (default: ResNet-32, K = 1 4 11 22), GROUP_WORKERS (the most jobs at once,
# default 4), RESUMABLE=1 (keep GROUP_WORKERS jobs going even if the pace says they cannot
# all finish; the deadline stops them), COMPILE
# (train.compile of the fused step: off by default; the fused compile path is untested),
# SKIP_TESTS=1, SKIP_BENCH=1. Extra arguments are overrides of the grid.
# Try it on a CPU first with a tiny setting (a minute or two):
#   OUT=runs/device-fused-try RESULTS=runs/device-fused-try/runs BUDGET=300 SKIP_TESTS=1 \
#     BENCH_ARGS="--model resnet8 --ks 1 2 --steps 2 --rounds 1 --batch 32 --device cpu" \
#     CDBLOSS_SHARED_DATA=../shared/data bash tools/device_fused.sh model.name=resnet8 \
#     train.epochs=1 'optim.milestones=[1]' optim.warmup_epochs=0 train.device=cpu \
#     'sweep.data.options.imbalance_factor=[100]' \
#     'sweep.variants=[{loss.name: ce}, {loss.name: balanced-softmax}, {loss.name: ldam-drw, model.options: {normed_linear: true}}]'
set -euo pipefail
start=$(date +%s)
BUDGET=${BUDGET:-582}
OUT=${OUT:?set OUT to the folder the results go to}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
RESULTS=${RESULTS:-runs/cifar10_lt_fused}
CONFIG=${CONFIG:-configs/cifar10_lt.yaml}
BENCH_ARGS=${BENCH_ARGS:---model resnet32 --ks 1 4 11 22 --steps 20 --rounds 2}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CDBLOSS_SHARED_DATA="${CDBLOSS_SHARED_DATA:-$PWD/.device}"
left() { echo $((BUDGET - ($(date +%s) - start))); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ -z "${SKIP_TESTS:-}" ]; then  # informative: TF32 convolutions may exceed the CPU tolerances
  timeout 90 python -m pytest -q -p no:cacheprovider tests/lab/engine/test_fused.py \
    > "$OUT/fused_tests.log" 2>&1 || echo "fused tests on this device: see fused_tests.log"
  tail -1 "$OUT/fused_tests.log"
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of arguments
  timeout 150 python benchmarks/fused_sweep.py $BENCH_ARGS --json "$OUT/fused_bench.json" \
    > "$OUT/fused_bench.log" 2>&1 || echo "the benchmark stopped early (fused_bench.log)"
  cat "$OUT/fused_bench.log"
fi

extra=(train.progress=false)
[ -n "${COMPILE:-}" ] && extra+=("train.compile=${COMPILE}")
python -m cdbloss data info cifar-lt --dataset cifar10 --imbalance-factor 100 | tail -2
grid_s=$(($(left) - 45))  # what is left, less the packing below and the guard
echo "the fused grid gets ${grid_s} s"
status=0
pack=(--launcher pack --budget "$grid_s" --max-active "${GROUP_WORKERS:-4}")
[ -n "${RESUMABLE:-}" ] && pack+=(--resumable)
# the pack ends its jobs by the budget itself; the timeout is a guard (Ctrl-C keeps checkpoints)
timeout -s INT -k 20 $((grid_s + 20)) python -m cdbloss sweep "$CONFIG" "${extra[@]}" "$@" \
  --fuse "${pack[@]}" --out "$RESULTS" > "$OUT/fused_grid.log" 2>&1 || status=$?
cat "$OUT/fused_grid.log"
echo "sweep exit status ${status} (1: runs left for a later call) after $(($(date +%s) - start)) s"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
sed -i "s|$PWD/||g" "$OUT"/*.log
mkdir -p "$RESULTS" && cd "$RESULTS"
find . -maxdepth 2 \( -name result.json -o -name config.json -o -name metrics.jsonl \
  -o -name error.json -o -name sweep.json -o -name pack.json \) -print0 |
  tar czf "$OUT/cifar10_lt_fused_results.tgz" --null -T -
unfinished=()
for d in */; do
  [ -f "$d/checkpoint.pt" ] && [ ! -f "$d/result.json" ] && unfinished+=("$d/checkpoint.pt")
done
if [ -n "${CHECKPOINTS:-}" ] && [ ${#unfinished[@]} -gt 0 ]; then
  tar cf - "${unfinished[@]}" | split -b 15m - "$OUT/cifar10_lt_fused_checkpoints.tar.part-"
fi
echo "finished runs: $(find . -maxdepth 2 -name result.json | wc -l); stopped: ${#unfinished[@]}"
