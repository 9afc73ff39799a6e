"""Fault drill: kill a training run with SIGKILL at random moments, resume it each time, and
check that it ends bit for bit where an uninterrupted run ends, with no torn checkpoint.

    python benchmarks/fault_drill.py                      # 20 kills of a 600-step DCGAN run
    python benchmarks/fault_drill.py --kills 5 --steps 200 --set model.name=vae

Each kill lands at a uniformly random moment of the resumed process's first STARTUP seconds
plus 1/kills of an uninterrupted run (start-up, steps and checkpoint writes included), so the
kills spread over the run instead of the run ending first. After every kill, every checkpoint file present must load; the
run is then resumed. At the end the last checkpoint's tensors (networks, EMA, optimisers,
sampler, RNG states) are compared with those of one uninterrupted run of the same config.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP = 4.0  # seconds a process takes to import torch and ganforge, about, on 2 CPU cores
BASE = ["log.checkpoint_every=25", "log.sample_every=100000", "log.every=25", "log.progress=false",
        "train.precision=fp32"]


def command(out: Path, steps: int, extra: list[str], resume: bool) -> list[str]:
    sets = [f"--set={item}" for item in (*BASE, *extra)]
    head = [sys.executable, "-m", "ganforge", "train", "--steps", str(steps), "--quiet"]
    return head + (["--resume", str(out)] if resume else ["--out", str(out), *sets])


def saved(run: Path) -> bool:
    """Whether the run has a checkpoint to resume from: a kill may land before the first one
    (a slow CPU's start-up), and a run with nothing saved starts again rather than resumes."""
    return (run / "checkpoints" / "last.safetensors").is_file()


def checkpoints_load(run: Path) -> list[str]:
    """Names of checkpoint files that fail to load (torn or half-written)."""
    from ganforge import checkpoint
    from ganforge.errors import CheckpointError

    bad = []
    for path in sorted((run / "checkpoints").glob("*.safetensors")):
        try:
            checkpoint.load(path)
        except CheckpointError:
            bad.append(path.name)
    return bad


def drill(kills: int, steps: int, extra: list[str], seed: int, work: Path) -> dict:
    import torch

    from ganforge import checkpoint

    rng = random.Random(seed)
    straight, killed = work / "straight", work / "killed"
    started = time.perf_counter()
    subprocess.run(command(straight, steps, extra, False), check=True, capture_output=True)
    one_run = time.perf_counter() - started
    done, torn, resumed = 0, [], 0
    while done < kills:
        resume = saved(killed)
        process = subprocess.Popen(command(killed, steps, extra, resume), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            # A moment within start-up (about STARTUP s) plus a share of the run, so that
            # `kills` kills land before the run can end.
            process.wait(timeout=rng.uniform(0.5, STARTUP + one_run / kills))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            done += 1
        else:
            break  # the run finished before the kill
        resumed += resume
        torn += [f"kill {done}: {name}" for name in checkpoints_load(killed)]
    final = subprocess.run(command(killed, steps, extra, saved(killed)), capture_output=True, text=True)
    if final.returncode:
        raise SystemExit(f"the last resume failed:\n{final.stderr[-2000:]}")
    a, _ = checkpoint.load(straight / "checkpoints" / "last.safetensors")
    b, meta = checkpoint.load(killed / "checkpoints" / "last.safetensors")
    different = sorted(k for k in a if k not in b or not torch.equal(a[k], b[k]))
    return {"kills": done, "resumes": resumed, "steps": meta["step"], "torn": torn,
            "different_tensors": different, "tensors": len(a), "one_run_s": round(one_run, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config keys")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ganforge-drill-") as tmp:
        result = drill(args.kills, args.steps, args.set, args.seed, Path(tmp))
    print(result)
    ok = not result["torn"] and not result["different_tensors"]
    print("OK: bit-identical to the uninterrupted run, no torn checkpoint" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
