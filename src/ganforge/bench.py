"""`ganforge bench`: training and sampling speed, against a fixed textbook DCGAN loop.

What is measured (see benchmarks/README.md):
  * ganforge training images/s: `Trainer._train_step` (one D and one G update with the gan
    objective) on a config built by `make_config`, the run directory in a temporary folder;
  * the same for the textbook PyTorch DCGAN loop in ganforge/reference_dcgan.py (same layer
    widths, resolution, batch size and device; fp32, as written), and the ratio of the two.
    Each timed block interleaves the two loops in chunks of a few steps, so a change in the
    load of a shared machine hits both alike;
  * sampling images/s through `ganforge.inference.generate`;
  * peak memory, the machine and the date.
Each speed is the median over `repeats` timed blocks of `steps` steps after `warmup` steps.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


SAMPLE_BATCH = 500  # images per forward pass when sampling (generate's default)
BUSY_WARNING = 0.2  # CPUs kept busy by other processes above which format_bench warns
CHUNK = 5           # steps of one loop before switching to the other, when both are timed


def benchmark(model: str = "dcgan", resolution: int = 32, channels: int = 1, batch_size: int = 64,
              steps: int = 20, warmup: int = 5, repeats: int = 3, device: str = "auto",
              precision: str = "auto", channels_last: str = "auto", sample_n: int = 10000,
              reference: bool = True, dataset: str = "digits", settings: dict | None = None) -> dict:
    """Measure training and sampling speed; returns a flat dict of numbers and strings.

    Args:
        model: a registered model (the reference loop exists for dcgan only).
        resolution, channels, dataset: the data the networks are built for and trained on.
        batch_size: real images per D update (the reference uses the same).
        steps: training steps per timed block; warmup: untimed steps first; repeats: timed
            blocks (and sampling runs), the median of which is reported.
        device, precision, channels_last: as train.device / train.precision /
            train.channels_last; the reference always runs as written (fp32, default layout).
        sample_n: images generated per sampling run (0: no sampling).
        reference: also time the textbook loop and report ganforge / reference.
        settings: further config keys for ganforge's side, e.g. {"train.compile": "yes"}.

    Keys: train_images_per_s, reference_images_per_s and ratio (the median over the timed
    blocks of ganforge / reference within the block; absent when the reference is skipped,
    and reference_note says why), sample_images_per_s, peak_memory_*_mb, the settings and
    the machine (torch, device_name, cpu_count, threads, load_avg_*, date, other_cpu_load*:
    CPUs other processes kept busy while timing).

    Example:
        >>> print(format_bench(benchmark(steps=20, repeats=3)))
    """
    from .resolve import make_config
    from .errors import ConfigError
    from .training import Trainer

    for key, value, least in (("steps", steps, 1), ("repeats", repeats, 1), ("warmup", warmup, 0),
                              ("sample_n", sample_n, 0), ("batch_size", batch_size, 1)):
        if value < least:
            raise ConfigError(f"bench: {key}={value}: must be at least {least}")
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "load_avg_before": _load_avg()}

    with tempfile.TemporaryDirectory(prefix="ganforge-bench-") as tmp:
        config = make_config(overrides={
            "model.name": model, "data.name": dataset, "data.resolution": resolution,
            "data.channels": channels, "train.batch_size": batch_size,
            "train.steps": warmup + steps * repeats, "train.device": device,
            "train.precision": precision, "train.channels_last": channels_last,
            "log.progress": False, "log.tensorboard": "no", **(settings or {}),
            "out": str(Path(tmp) / "run")})
        trainer = Trainer(config)
        dev = trainer.device
        result.update(machine_facts(dev))
        result.update({
            "model": model, "dataset": dataset, "resolution": resolution, "channels": channels,
            "batch_size": batch_size, "steps": steps, "warmup": warmup, "repeats": repeats,
            "precision": {torch.float32: "fp32", torch.bfloat16: "bf16",
                          torch.float16: "fp16"}[trainer.dtype],
            "channels_last": "yes" if trainer.channels_last else "no",
            "compile": "yes" if trainer.compiled else "no",
            "adam": _adam_impl(next(iter(trainer.optimizers.values()))),
            "ganforge_params": sum(p.numel() for net in trainer.nets.values() for p in net.parameters()),
        })
        # A step updates every network once (gan: one D and one G update on one real batch);
        # images/s is batch size x steps per second, as in the trainer's own log.
        images_per_step = batch_size

        # ganforge warm-up, then its peak memory before anything else is built.
        _reset_peak(dev)
        _ganforge_block(trainer, warmup)
        result["peak_memory_train_mb"], result["peak_memory_kind"] = _peak_memory_mb(dev)

        ref = None
        if reference:
            ref, note = _reference_loop(model, config, trainer, dev, batch_size)
            result["reference_note"] = note
            if ref is not None:
                result["reference_params"] = sum(p.numel() for net in (ref.netG, ref.netD)
                                                 for p in net.parameters())
                before = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
                _reset_peak(dev)
                ref.run_steps(warmup)
                if dev.type == "cuda":
                    peak = torch.cuda.max_memory_allocated(dev) - before
                    result["reference_peak_memory_mb"] = peak / 2 ** 20
        else:
            result["reference_note"] = "skipped: reference=False"

        # Timed blocks. With a reference, each block interleaves the two loops in chunks of
        # CHUNK steps (swapping which goes first), so the load of a shared machine hits both
        # alike, and the ratio is taken block by block.
        ours, theirs = [], []
        counters = _cpu_counters()
        for _ in range(repeats):
            if ref is None:
                ours.append(images_per_step * steps / _ganforge_block(trainer, steps))
                continue
            our_s = their_s = their_images = 0.0
            done = 0
            while done < steps:
                n = min(CHUNK, steps - done)
                if (done // CHUNK) % 2:
                    seconds, images = _reference_block(ref, n, dev)
                    our_s += _ganforge_block(trainer, n)
                else:
                    our_s += _ganforge_block(trainer, n)
                    seconds, images = _reference_block(ref, n, dev)
                their_s, their_images, done = their_s + seconds, their_images + images, done + n
            ours.append(images_per_step * steps / our_s)
            theirs.append(their_images / their_s)
        result["other_cpu_load"] = _other_cpu_load(counters)
        result["train_images_per_s"] = statistics.median(ours)
        result["train_images_per_s_runs"] = _runs(ours)
        result["train_step_ms"] = 1000 * images_per_step / result["train_images_per_s"]
        if ref is not None:
            result["reference_images_per_s"] = statistics.median(theirs)
            result["reference_images_per_s_runs"] = _runs(theirs)
            pairs = [a / b for a, b in zip(ours, theirs)]
            result["ratio"] = statistics.median(pairs)
            result["ratio_runs"] = ", ".join(f"{x:.2f}" for x in pairs)
            del ref

        # Sampling through the library's own path, with the network sampling uses (EMA copy).
        if sample_n and trainer.objective.sample_net is not None:
            result.update(_sampling(trainer, sample_n, repeats, dev))
        elif sample_n:
            result["sample_note"] = f"skipped: model {model!r} does not generate images"
        del trainer
    result["load_avg_after"] = _load_avg()
    return result


def reference_step_rate(config, blocks: int = 3, steps: int = 4, warmup: int = 3) -> float:
    """Training steps per second of the time-budget rules' reference step on this machine: the
    default DCGAN (32 px, one channel, widths 64, batch 64, its default objective) on the bundled
    digits, on `config`'s device, precision and memory layout (never compiled: compiling would
    take longer than the timing). Against resolve.REFERENCE_STEP_RATE it says how many of the
    rules' seconds a second here is worth; resolve.make_config's `step_rate`. `warmup` untimed
    steps first (kernel selection), then the fastest of `blocks` blocks of `steps` steps (a
    moment of load from another process slows one block, not the answer)."""
    from .resolve import make_config
    from .training import Trainer

    train = config.train
    with tempfile.TemporaryDirectory(prefix="ganforge-rate-") as tmp:
        trainer = Trainer(make_config(overrides={
            "data.name": "digits", "data.resolution": 32, "data.channels": 1, "model.name": "dcgan",
            "train.batch_size": 64, "train.steps": warmup + blocks * steps, "train.device": train.device,
            "train.precision": train.precision, "train.channels_last": train.channels_last,
            "train.compile": "no", "log.progress": False, "log.tensorboard": "no",
            "out": str(Path(tmp) / "run")}))
        _ganforge_block(trainer, warmup)
        fastest = min(_ganforge_block(trainer, steps) for _ in range(blocks))
        del trainer
    return steps / fastest


def format_bench(result: dict) -> str:
    """A readable table of a `benchmark` result."""
    r = result
    lines = [f"ganforge bench: {r['model']} {r['resolution']}x{r['resolution']}x{r['channels']} "
             f"on {r['dataset']}, batch {r['batch_size']}, {r['precision']}, "
             f"channels_last {r['channels_last']}, compile {r.get('compile', 'no')}, "
             f"Adam {r.get('adam', '?')}",
             f"  {r['device']} ({r['device_name']}), torch {r['torch']}, {r['threads']} threads, "
             f"{r['cpu_count']} CPUs, load avg {r['load_avg_before']} -> {r['load_avg_after']}",
             f"  other processes kept {_num(r.get('other_cpu_load'), '.2f')} CPUs busy during the "
             f"timed training, {_num(r.get('other_cpu_load_sampling'), '.2f')} during sampling "
             f"(0 on a quiet machine)",
             f"  {r['date']}; median of {r['repeats']} blocks of {r['steps']} steps after "
             f"{r['warmup']} warm-up steps", ""]
    rows = [("ganforge training", f"{r['train_images_per_s']:.1f} img/s",
             f"{r['train_step_ms']:.1f} ms/step; runs {r['train_images_per_s_runs']}")]
    if "ratio" in r:
        rows.append(("reference training", f"{r['reference_images_per_s']:.1f} img/s",
                     f"textbook loop, fp32; runs {r['reference_images_per_s_runs']}"))
        rows.append(("ganforge / reference", f"{r['ratio']:.2f}x",
                     f"median of block pairs {r['ratio_runs']}"))
    else:
        rows.append(("reference training", "-", r.get("reference_note", "")))
    if "sample_images_per_s" in r:
        rows.append(("sampling", f"{r['sample_images_per_s']:.0f} img/s",
                     f"{r['sample_n']} images in {r['sample_seconds']:.2f} s; {r['sample_precision']}"))
    else:
        rows.append(("sampling", "-", r.get("sample_note", "skipped: sample_n=0")))
    memory = f"{r['peak_memory_train_mb']:.0f} MB" if _finite(r.get("peak_memory_train_mb")) else "-"
    rows.append(("peak memory (training)", memory, r["peak_memory_kind"]))
    if _finite(r.get("peak_memory_sample_mb")):
        rows.append(("peak memory (sampling)", f"{r['peak_memory_sample_mb']:.0f} MB", ""))
    width = max(len(name) for name, _, _ in rows)
    lines += [f"  {name:<{width}}  {value:>12}  {detail}".rstrip() for name, value, detail in rows]
    busy = [r.get(k) for k in ("other_cpu_load", "other_cpu_load_sampling")]
    if any(_finite(x) and x > BUSY_WARNING for x in busy):
        lines.append("  WARNING: other processes used the CPUs while this ran; the speeds, and "
                     "the ratio too, are not reliable. Run again on a quiet machine.")
    return "\n".join(lines)


def _adam_impl(optimizer: torch.optim.Optimizer) -> str:
    if optimizer.defaults.get("fused"):
        return "fused"
    return "foreach" if optimizer.defaults.get("foreach") else "loop"


# Timing.
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _ganforge_block(trainer, steps: int) -> float:
    """Seconds for `steps` training steps, the device synchronised at both ends."""
    sums: dict = {}
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer._train_step(sums)
        trainer.step += 1
    _sync(trainer.device)
    return time.perf_counter() - start


def _reference_block(ref, steps: int, device: torch.device) -> tuple[float, int]:
    """(seconds, images) for `steps` steps of the reference loop, synchronised at both ends."""
    _sync(device)
    start = time.perf_counter()
    timings = ref.run_steps(steps)
    _sync(device)
    return time.perf_counter() - start, sum(n for _, n in timings)


def _reference_loop(model: str, config, trainer, device: torch.device, batch_size: int):
    """(the reference loop built like ganforge's networks, note) or (None, why not)."""
    if model != "dcgan":
        return None, f"skipped: the reference loop is a DCGAN; model is {model!r}"
    from . import reference_dcgan as module

    if config.data.resolution not in module.RESOLUTIONS:
        return None, (f"skipped: the reference supports resolutions "
                      f"{', '.join(map(str, module.RESOLUTIONS))}, not {config.data.resolution}")
    args = config.model.args
    ref = module.ReferenceDCGAN(config.data.resolution, config.data.channels, batch_size, device,
                                ngf=args["g_width"], ndf=args["d_width"], nz=args["latent_dim"])
    ours = {name: sum(p.numel() for p in net.parameters()) for name, net in trainer.nets.items()}
    theirs = {"G": sum(p.numel() for p in ref.netG.parameters()),
              "D": sum(p.numel() for p in ref.netD.parameters())}
    if ours != theirs:
        return None, (f"skipped: the reference's layer widths differ from this model's "
                      f"(parameters {theirs} vs {ours}; model.max_width caps them?)")
    return ref, (f"fixed textbook loop reference_dcgan.py, fp32, interleaved with ganforge "
                 f"in chunks of {CHUNK} steps")


def _sampling(trainer, n: int, repeats: int, device: torch.device) -> dict:
    from .inference import generate

    net = trainer.sampling_net()
    was_training = net.training
    net.eval()
    counters = _cpu_counters()
    try:
        _reset_peak(device)
        with torch.inference_mode():
            generate(net, min(n, SAMPLE_BATCH), seed=0, batch_size=SAMPLE_BATCH)  # warm-up
            seconds = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                generate(net, n, seed=0, batch_size=SAMPLE_BATCH)
                _sync(device)
                seconds.append(time.perf_counter() - start)
    finally:
        net.train(was_training)
    dtype = next(net.parameters()).dtype
    median = statistics.median(seconds)
    return {"sample_n": n, "sample_seconds": median, "sample_images_per_s": n / median,
            "sample_images_per_s_runs": _runs([n / s for s in seconds]),
            "sample_precision": f"{str(dtype).replace('torch.', '')} weights, as generate() runs them",
            "peak_memory_sample_mb": _peak_memory_mb(device)[0],
            "other_cpu_load_sampling": _other_cpu_load(counters)}


# Memory and machine.
def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20, "CUDA max_memory_allocated"
    try:
        import resource
    except ImportError:  # Windows
        return float("nan"), "unavailable on this platform"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10  # bytes vs KiB
    return peak_mb, ("peak RSS of the whole process so far (getrusage; includes Python, torch "
                     "and the data set)")


def machine_facts(device: torch.device) -> dict:
    """What a speed number depends on: the device's name, the CPUs usable, threads, versions."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "device_name": name, "cpu_count": os.cpu_count() or 0, "cpus_usable": usable or 0,
            "threads": torch.get_num_threads()}


def _cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name, with its family and model numbers where /proc/cpuinfo gives
    them: a virtual machine may show only "AMD EPYC" for CPUs of two generations whose
    speeds differ by 1.7x, and a budget's cells must not be averaged across them."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine() or "unknown CPU"
    if fields.get("cpu family") and fields.get("model"):
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _cpu_counters() -> tuple[float, float, float] | None:
    """(CPU seconds busy on the whole machine, this process's CPU seconds, wall clock), or
    None where /proc/stat is missing."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    own = os.times()
    return ((user + nice + system + irq + softirq + steal) / tick, own.user + own.system,
            time.perf_counter())


def _other_cpu_load(start) -> float:
    """CPUs kept busy by other processes since `start` (a `_cpu_counters()`), on average;
    NaN where unknown. Near 0 on a quiet machine; with others running, speeds (and even the
    ratio: the two loops suffer unequally from contention) are less trustworthy."""
    end = _cpu_counters()
    if start is None or end is None or end[2] <= start[2]:
        return float("nan")
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(others, 0.0) / (end[2] - start[2])


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unavailable"


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _num(value, spec: str) -> str:
    return format(value, spec) if _finite(value) else "?"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
