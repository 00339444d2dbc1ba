#!/usr/bin/env bash
# CIFAR-10-LT with the paper's full schedule (configs/cifar10_lt.yaml: ResNet-32, 200 epochs)
# on a lent GPU machine, as one call of the `device` tool. The GPU machine has torch but not
# this package and reaches no network, so it runs from src/ and reads the CIFAR-10 JPEG zip
# from a folder the call carries. Prepare once on this machine:
#
#   mkdir -p .device/cifar10-jpeg && cp ../shared/data/cifar10-jpeg/* .device/cifar10-jpeg/
#   grep -qx '/.device/' .git/info/exclude || echo /.device/ >> .git/info/exclude
#
# The call sends the working tree, which may hold 64 MiB: the zip (59 MiB) and the committed
# results (38 MiB) do not fit together, so untrack results/ for the call and restore it after:
#
#   git rm -r -q --cached results && echo /results/ >> .git/info/exclude
#   run(command="COMPILE=reduce-overhead bash tools/device_cifar10_lt.sh",
#       carry=[".device", "results/cifar10_lt"], timeout_s=598)
#   git reset -q && sed -i '\|^/results/$|d' .git/info/exclude
#
# results/cifar10_lt travels so that the call skips the finished runs (under 1 MB); it must
# hold no checkpoint.pt then: one (5.8 MB) does not fit beside the zip, so a run stopped at a
# deadline resumes only on the same warm machine, not on a fresh one. Every call must carry
# .device again. A second call right after the first, on the warm machine: unpack the first's
# results here (below) and carry results/cifar10_lt again, with .device. Not carried, the
# folder loses there every file the repo's .gitignore does not ignore (result.json,
# config.json) and keeps the ignored checkpoint.pt files, so the pack starts the grid over
# (seen 2026-11-28: a second call carrying only .device re-ran CE at factor 100, kept as
# results/cifar10_lt_repeat). Carried, the unpacked result.json files mark the finished runs;
# whether a stopped run's checkpoint.pt left there survives the carried folder replacing the
# old one is untested (the device tool says carried paths replace those there).
# Unpack what comes back here with
#   cd results/cifar10_lt && tar xzf <files_at>/cifar10_lt_results.tgz \
#     && mv pack.json packs/<date>_<card>_call<N>.json
# and commit each new run's result.json, config.json and metrics.jsonl.
#
# Extra arguments are overrides of the grid, e.g. 'sweep.data.options.imbalance_factor=[100]';
# CONFIG=configs/cifar10_lt_authors.yaml (with RESULTS=results/cifar10_lt_authors) runs the
# authors' protocol instead of the paper's (docs/results.md, section 6, has the calls waiting).
# `cdbloss sweep --launcher pack` (docs/engine.md) runs as many runs at once as the
# measured pace lets finish before BUDGET seconds (default 582) are up, factor-100 runs first. One uncompiled run alone took 391 s on an
# H100 (2026-11-27), and k runs sharing an H100 slowed each other by 1.05 (k = 2) and 1.36
# (k = 4) (benchmarks/gpu_concurrency.py, docs/benchmarks.md), so the second, third... run is
# assumed to slow the others by the factors in JOIN_SLOWDOWN (default: those measurements,
# 1.05, then 1.14 a run up to four) rather than the full-GPU (n+1)/n; the scheduler stops the
# newest run if the pace then says they will not all finish. Back come, in $OUT:
# cifar10_lt_results.tgz (result.json, config.json, metrics.jsonl, error.json of every run
# folder and pack.json, the scheduler's log), to unpack into results/cifar10_lt here, and the
# checkpoints of runs stopped at the deadline as cifar10_lt_checkpoints.tar.part-* (resumable).
# A factor-10 run (about 645 s alone uncompiled, about 250 s compiled) fits one call compiled;
# uncompiled, set RESUMABLE=1 (and, say, MAX_ACTIVE=4) with
# 'sweep.data.options.imbalance_factor=[10]' and call again at once on the warm machine, as a
# second call above (whether the stopped runs' checkpoints survive there is the untested part).
# COMPILE=reduce-overhead (or default, max-autotune) passes train.compile to every run, if the
# CUDA-graph check of tests/lab/engine/test_trainer.py passes there first (gpu_compile_check.log).
# Compiled runs leave the GPU far less idle: on an H200 (2026-11-28) two of them slowed each
# other by 1.67 (0.75 s an epoch alone, 1.26 shared; tools/pack_pace.py), so with COMPILE the
# default JOIN_SLOWDOWN is 1.67, then the full-GPU 1.5, 1.33...; the call's budget then fits
# three factor-100 runs (a later call: three in 449 s, slowed 2.45 by each other).
# Next calls: COMPILE=reduce-overhead bash tools/device_cifar10_lt.sh
# COMPILE=auto times it first (benchmarks/gpu_epoch_profile.py --compile reduce-overhead, its log
# back as gpu_epoch_profile.log, which also fills the compiler's cache for the runs) and runs the
# CUDA-graph check of tests/lab/engine/test_trainer.py (gpu_compile_check.log); the runs compile
# only if both pass and a compiled epoch takes under 0.8 of a plain one.
# Try it on a CPU first with a tiny grid (RESULTS keeps it out of results/cifar10_lt):
#   OUT=runs/device-try RESULTS=runs/device-try/runs BUDGET=150 \
#     bash tools/device_cifar10_lt.sh model.name=resnet8 \
#     train.epochs=2 'optim.milestones=[1]' optim.warmup_epochs=0
set -euo pipefail
start=$(date +%s)
BUDGET=${BUDGET:-582}
OUT=${OUT:?set OUT to the folder the results go to}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)  # absolute: the packing below runs from another folder
RESULTS=${RESULTS:-results/cifar10_lt}  # the sweep folder the runs go to
CONFIG=${CONFIG:-configs/cifar10_lt.yaml}  # e.g. configs/cifar10_lt_authors.yaml (the authors' protocol)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CDBLOSS_SHARED_DATA="${CDBLOSS_SHARED_DATA:-$PWD/.device}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(cpu only)")
PY
# configs/cifar10_lt.yaml turns train.transform_on_device on (crop, flip, normalise on the GPU;
# its checks passed on an H200, 2026-11-28): check it here first (seconds), and run without it
# if the check fails (its log comes back as gpu_checks.log)
extra=()
if ! timeout 180 python -m pytest -q -p no:cacheprovider tests/lab/engine/test_trainer.py \
  -k "gpu and not compiled" > "$OUT/gpu_checks.log" 2>&1; then
  echo "the GPU checks failed (gpu_checks.log): these runs use train.transform_on_device=false"
  extra+=(train.transform_on_device=false)
fi
tail -1 "$OUT/gpu_checks.log"
if [ "${COMPILE:-}" = auto ]; then
  COMPILE=
  timeout 240 python benchmarks/gpu_epoch_profile.py --compile reduce-overhead \
    > "$OUT/gpu_epoch_profile.log" 2>&1 || true
  cat "$OUT/gpu_epoch_profile.log"
  ratio=$(python - "$OUT/gpu_epoch_profile.log" <<'PY'
import ast, sys
times = {}
for line in open(sys.argv[1]):
    if line.startswith("full epoch, transform on GPU") and "[" in line:
        times["compiled" in line] = min(ast.literal_eval(line[line.index("["):].strip()))
print(round(times[True] / times[False], 3) if len(times) == 2 else "none")
PY
)
  echo "compiled / plain epoch on the GPU: ${ratio}"
  if [ "$ratio" != none ] && python -c "import sys; sys.exit(not float('$ratio') < 0.8)"; then
    COMPILE=reduce-overhead  # if the check below passes too
  fi
fi
if [ -n "${COMPILE:-}" ]; then
  if ! timeout 240 python -m pytest -q -p no:cacheprovider tests/lab/engine/test_trainer.py \
    -k "gpu and compiled" > "$OUT/gpu_compile_check.log" 2>&1; then
    echo "the CUDA-graph check failed (gpu_compile_check.log): these runs are not compiled"
    COMPILE=
  fi
  tail -1 "$OUT/gpu_compile_check.log"
fi
echo "train.compile for the runs: ${COMPILE:-off}"
slowdown="1.05 1.14 1.14 1.22 1.22 1.13"  # uncompiled ResNet-32 runs sharing an H100
if [ -n "${COMPILE:-}" ]; then
  extra+=("train.compile=${COMPILE}")
  slowdown="1.67 1.5 1.33 1.25 1.2 1.17"  # two compiled runs on an H200, then a full GPU
fi
# the committed runs sit in the folder's store: expand them so the sweep skips them
# (after the call: cdbloss results pack "$RESULTS" --also metrics.jsonl, then commit the store)
if [ -f "$RESULTS/runs.jsonl.gz" ]; then python -m cdbloss results expand "$RESULTS/runs.jsonl.gz"; fi
# decode the JPEGs once, before the runs start (each would otherwise decode them itself)
python -m cdbloss data info cifar-lt --dataset cifar10 --imbalance-factor 100 | tail -3
left=$((BUDGET - ($(date +%s) - start) - 10))
status=0
pack=(--launcher pack --budget "$left" --first imbalance_factor=100 --max-active "${MAX_ACTIVE:-8}")
[ -n "${RESUMABLE:-}" ] && pack+=(--resumable)
# shellcheck disable=SC2086  # JOIN_SLOWDOWN is a list of factors
python -m cdbloss sweep "$CONFIG" train.progress=false "${extra[@]}" "$@" sweep.launcher.threads=2 \
  --out "$RESULTS" "${pack[@]}" --join-slowdown ${JOIN_SLOWDOWN:-$slowdown} || status=$?
echo "sweep exit status ${status} (1: runs left for a later call) after $(($(date +%s) - start)) s"
sed -i "s|$PWD/||g" "$OUT"/*.log  # the logs name the repo root of that machine: keep paths relative
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
mkdir -p "$RESULTS" && cd "$RESULTS"
find . -maxdepth 2 \( -name result.json -o -name config.json -o -name metrics.jsonl \
  -o -name error.json -o -name pack.json \) -print0 | tar czf "$OUT/cifar10_lt_results.tgz" --null -T -
unfinished=()
for d in */; do
  [ -f "$d/checkpoint.pt" ] && [ ! -f "$d/result.json" ] && unfinished+=("$d/checkpoint.pt")
done
if [ ${#unfinished[@]} -gt 0 ]; then  # files come back at 16 MiB each at most
  tar cf - "${unfinished[@]}" | split -b 15m - "$OUT/cifar10_lt_checkpoints.tar.part-"
fi
echo "finished runs: $(find . -maxdepth 2 -name result.json | wc -l); stopped: ${#unfinished[@]}"
