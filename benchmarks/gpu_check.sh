#!/usr/bin/env bash
# The checks that need a CUDA device, as one script for a short lease of a GPU machine:
# the tests marked gpu, the step's speed against the reference loop (eager, the default, and
# with train.compile=yes in both memory layouts), and one real budgeted
# run (Fashion-MNIST, 60 s) scored by `ganforge evaluate`, so the budget rule's timer and the
# whole train -> evaluate path run on the GPU once.
#
#   bash benchmarks/gpu_check.sh OUT [DATA]    # DATA: a folder with FashionMNIST/ (default data)
#
# BENCH=no skips the speed steps; SEEDS="0 1" trains (and scores) the 60 s run once per seed;
# CONDITIONAL=yes adds a 60 s run of the conditional preset (cgan-mnist on Fashion-MNIST, CAS).
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
# a test module whose imports are missing there (the studio's fastapi) is named in the log, not fatal
step tests 150 "$py" -m pytest -q -s -p no:cacheprovider -m gpu --continue-on-collection-errors tests
if [ "${BENCH:-yes}" != no ]; then
    bench="$py -m ganforge bench --device cuda --steps 200 --repeats 3 --sample-n 0"
    step bench-32px 120 $bench --json "$out/bench-32px.json"
    step bench-32px-compiled 120 $bench --no-reference --set train.compile=yes --json "$out/bench-32px-compiled.json"
    step bench-32px-compiled-nchw 120 $bench --no-reference --set train.compile=yes --channels-last no --json "$out/bench-32px-compiled-nchw.json"
    step bench-64px 90 $bench --resolution 64 --channels 3 --batch-size 128 --json "$out/bench-64px.json"
    step bench-64px-compiled-nchw 120 $bench --resolution 64 --channels 3 --batch-size 128 --no-reference --set train.compile=yes --channels-last no --json "$out/bench-64px-compiled-nchw.json"
fi
budgeted() {  # budgeted NAME TRAIN-OPTIONS...: a 60 s run, scored; its eval.json and last grid to OUT
    local name=$1; shift
    step "train-$name" 120 "$py" -m ganforge train --dataset fashion-mnist --data-dir "$data" --time-budget 60 \
        --device cuda --out "$work/$name" --quiet "$@"
    step "evaluate-$name" 120 "$py" -m ganforge evaluate "$work/$name" --device cuda
    cp "$work/$name/eval.json" "$out/eval-$name.json" 2>/dev/null
    cp "$work/$name/config.yaml" "$out/config-$name.yaml" 2>/dev/null
    cp "$work/$name/status.json" "$out/status-$name.json" 2>/dev/null
    local last
    last=$(ls "$work/$name"/samples/*.png 2>/dev/null | sort | tail -1)
    [ -n "$last" ] && cp "$last" "$out/samples-$name.png"
}
for seed in ${SEEDS:-0}; do
    budgeted "fm60-seed$seed" --seed "$seed"
done
[ "${CONDITIONAL:-no}" = yes ] && budgeted cgan-fm60 --preset cgan-mnist --seed 0
cat "$out/steps.txt"
