#!/usr/bin/env bash
# The checks that need a CUDA device, as one script for a short lease of a GPU machine:
# the tests marked gpu, the step's speed against the reference loop (eager, the default, and
# with train.compile=yes in both memory layouts), and one real budgeted
# run (Fashion-MNIST, 60 s) scored by `ganforge evaluate`, so the budget rule's timer and the
# whole train -> evaluate path run on the GPU once.
#
#   bash benchmarks/gpu_check.sh OUT [DATA]    # DATA: a folder with FashionMNIST/ (default data)
#
# Every step has its own time limit and log under OUT, and a failing step does not stop the
# next: what came back says which part broke. Run from the repository root; uses `python3`
# (or $PYTHON) with the package importable (installed, or PYTHONPATH=src).
set -u
out=${1:?usage: gpu_check.sh OUT [DATA]}
data=${2:-data}
py=${PYTHON:-python3}
mkdir -p "$out"
work=$(mktemp -d)
step() {  # step NAME SECONDS COMMAND...: run it, log to OUT/NAME.log, record its exit status
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "$name rc=$? $((SECONDS - start))s" >>"$out/steps.txt"
}

{ nvidia-smi -L; "$py" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; } >"$out/machine.txt" 2>&1
step tests 150 "$py" -m pytest -q -s -p no:cacheprovider -m gpu tests
bench="$py -m ganforge bench --device cuda --steps 200 --repeats 3 --sample-n 0"
step bench-32px 120 $bench --json "$out/bench-32px.json"
step bench-32px-compiled 120 $bench --no-reference --set train.compile=yes --json "$out/bench-32px-compiled.json"
step bench-32px-compiled-nchw 120 $bench --no-reference --set train.compile=yes --channels-last no --json "$out/bench-32px-compiled-nchw.json"
step bench-64px 90 $bench --resolution 64 --channels 3 --batch-size 128 --json "$out/bench-64px.json"
step bench-64px-compiled-nchw 120 $bench --resolution 64 --channels 3 --batch-size 128 --no-reference --set train.compile=yes --channels-last no --json "$out/bench-64px-compiled-nchw.json"
step train-60s 120 "$py" -m ganforge train --dataset fashion-mnist --data-dir "$data" --time-budget 60 --device cuda --seed 0 --out "$work/fm60" --quiet
step evaluate 120 "$py" -m ganforge evaluate "$work/fm60" --device cuda
cp "$work/fm60/eval.json" "$out/eval.json" 2>/dev/null
cp "$work/fm60/config.yaml" "$out/train-config.yaml" 2>/dev/null
last=$(ls "$work"/fm60/samples/*.png 2>/dev/null | sort | tail -1)
[ -n "$last" ] && cp "$last" "$out/last-samples.png"
cat "$out/steps.txt"
