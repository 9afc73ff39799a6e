"""Helpers shared by the test files."""


def error_line(capsys, command: str = "train") -> str:
    """The one stderr line of a failed command (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ganforge {command}: error: "), err
    return lines[0]


def assert_resume_is_exact(tmp_path, overrides: dict, steps: int, split: int) -> dict:
    """Train `steps` straight, and `split` then resumed to `steps`: every checkpoint tensor
    (networks, EMA, optimisers, data order, RNG) must be equal. Returns the tensors."""
    import torch

    import ganforge
    from ganforge import checkpoint

    straight = ganforge.train(overrides={**overrides, "train.steps": steps, "out": str(tmp_path / "straight")})
    ganforge.train(overrides={**overrides, "train.steps": split, "out": str(tmp_path / "split")})
    resumed = ganforge.train(resume=tmp_path / "split", overrides={"train.steps": steps})
    assert straight.step == resumed.step == steps
    a, _ = checkpoint.load(straight.dir / "checkpoints" / "last.safetensors")
    b, _ = checkpoint.load(resumed.dir / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys()
    assert any(k.startswith("optim.D.state") or k.startswith("optim.G.state") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    return a


def torchrun(worker, out, settings: list[str], nproc: int = 2):
    """Run the script `worker` under torchrun (gloo on CPU, one thread per process) with
    arguments `out` and `settings`; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(worker), str(out), *settings]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


def load_benchmark(path):
    """A script of benchmarks/ imported as a module (benchmarks are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
