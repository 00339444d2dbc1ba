#!/usr/bin/env bash
# CIFAR-10-LT with the paper's full schedule (configs/cifar10_lt.yaml: ResNet-32, 200 epochs)
# on a lent GPU machine, as one call of the `device` tool. The GPU machine has torch but not
# this package and reaches no network, so it runs from src/ and reads the CIFAR-10 JPEG zip
# from a folder the call carries. Prepare once on this machine:
#
#   mkdir -p .device/cifar10-jpeg && cp ../shared/data/cifar10-jpeg/* .device/cifar10-jpeg/
#   grep -qx '/.device/' .git/info/exclude || echo /.device/ >> .git/info/exclude
#
# then: run(command="bash scripts/device_cifar10_lt.sh", carry=[".device"], timeout_s=590).
# Extra arguments are sweep overrides, e.g. 'sweep.data.options.imbalance_factor=[100]'.
# The sweep stops at BUDGET seconds (default 520) so the results come back inside the call;
# finished runs are packed into $OUT/cifar10_lt_results.tgz (result.json, config.json and
# metrics.jsonl of every run folder), to unpack into results/cifar10_lt here and commit.
# Try it on a CPU first with a tiny grid:
#   OUT=runs/device-try BUDGET=120 bash scripts/device_cifar10_lt.sh model.name=resnet8 train.epochs=1
set -euo pipefail
start=$(date +%s)
BUDGET=${BUDGET:-520}
WORKERS=${WORKERS:-6}
OUT=${OUT:?set OUT to the folder the results go to}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)  # absolute: the packing below runs from another folder
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export CDBLOSS_SHARED_DATA="${CDBLOSS_SHARED_DATA:-$PWD/.device}"
python - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(cpu only)")
EOF
# decode the JPEGs once, before the workers start (each would otherwise decode them itself)
python -m cdbloss data info cifar-lt --dataset cifar10 --imbalance-factor 100 | tail -3
left=$((BUDGET - ($(date +%s) - start)))
echo "sweep: ${left} s left, ${WORKERS} workers"
status=0
timeout "$left" python -m cdbloss sweep --workers "$WORKERS" --out results/cifar10_lt \
  configs/cifar10_lt.yaml train.progress=false "$@" || status=$?
echo "sweep exit status ${status} (124: stopped at the budget) after $(($(date +%s) - start)) s"
mkdir -p results/cifar10_lt && cd results/cifar10_lt
find . -maxdepth 2 \( -name result.json -o -name config.json -o -name metrics.jsonl -o -name sweep.json \) \
  -print0 | tar czf "$OUT/cifar10_lt_results.tgz" --null -T -
echo "finished runs: $(find . -maxdepth 2 -name result.json | wc -l)"
