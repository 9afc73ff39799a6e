"""Transfer learning: a run that starts from another run's weights (`train.init_from`), and
parts of the networks kept fixed while it trains (`train.freeze`).

`--init-from RUN` copies the networks and their EMA, nothing else: optimisers start fresh and
the step at 0 (it is a new run; `--resume` is what continues one). Weights transfer between
runs of one model family at one resolution and channel count; anything else is refused by
name, before the run directory is made. A new number of classes keeps this run's freshly
initialised class tensors (embeddings, projection, classifier output), and says so.

Freezing is by parameter: a frozen parameter is left out of its network's optimiser and its
`requires_grad` is held off after the loop's per-phase switching, so no phase can train it;
the EMA leaves it alone too. Batch-norm running statistics are not parameters: inside a
frozen block they still follow the batches in training mode.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import atomic, checkpoint, rundir
from ..config import Config, parse_freeze
from ..errors import CheckpointError, ConfigError
from ..models import DataShape
from ..registry import suggest

REPORT = "init_from.json"
CHECKPOINT_NAME = re.compile(r"^(last|best|rollback|step-\d+)$")
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
SHAPE_KEYS = {"resolution": "data.resolution", "channels": "data.channels",
              "in_channels": "the input's channels", "scale": "the upscaling factor",
              "mask": "the mask input"}


# Freezing.
@dataclass
class Frozen:
    """The parameters `train.freeze` keeps fixed, by network, and what to tell the user."""

    names: dict[str, set[str]] = field(default_factory=dict)  # network -> parameter names
    params: list[nn.Parameter] = field(default_factory=list)
    norms: list[nn.Module] = field(default_factory=list)  # batch norms inside frozen parts
    lines: list[str] = field(default_factory=list)

    def hold(self) -> None:
        """Switch gradients off again after the loop switched a whole network on, and keep
        the batch norms of frozen parts in eval mode: their running statistics are part of
        what was frozen, so they normalise with what was loaded and are not updated."""
        for param in self.params:
            param.requires_grad_(False)
        for norm in self.norms:
            norm.eval()

    def trainable(self, name: str, net: nn.Module) -> list[nn.Parameter]:
        """The parameters of network `name` its optimiser steps."""
        fixed = self.names.get(name, set())
        return [p for n, p in net.named_parameters() if n not in fixed]

    def summary(self) -> dict[str, list[str]]:
        return {net: sorted(names) for net, names in self.names.items()}


def blocks(net: nn.Module, net_name: str = "the network") -> list[list[str]]:
    """The blocks `NET:N` counts, from the input side: the network's parts in the order it
    declares them, sequences (Sequential, ModuleList) opened one level, parts without
    parameters left out, and a normalisation layer joined to the block before it. Each
    block is a list of module paths.

    Example:
        >>> blocks(dcgan_D)          # conv, conv + its batch norm, ..., the final conv
        [['body.0'], ['body.2', 'body.3'], ['body.5', 'body.6'], ['final']]
    """
    found: list[list[str]] = []
    for name, child in net.named_children():
        if isinstance(child, nn.ModuleDict):
            first = next(iter(child.keys()), "KEY")
            raise ConfigError(f"{net_name}'s part {name!r} holds one module per key ({', '.join(child.keys())}) "
                              f"in no input-first order, so {net_name}:N is not defined; name module "
                              f"paths instead, e.g. {net_name}.{name}.{first}")
        parts = list(child.named_children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) \
            else [("", child)]
        for sub, module in parts:
            if next(module.parameters(), None) is None:
                continue
            path = f"{name}.{sub}" if sub else name
            if isinstance(module, NORMS) and found:
                found[-1].append(path)
            else:
                found.append([path])
    return found


def _under(name: str, paths: list[str]) -> bool:
    return any(name == path or name.startswith(path + ".") for path in paths)


def _resolve_path(net: nn.Module, net_name: str, path: str, entry: str) -> None:
    """Check that `path` names a module (or a parameter) of `net`, level by level, listing
    the valid names at the level where it goes wrong."""
    module, walked = net, net_name
    for part in path.split("."):
        children = dict(module.named_children())
        if part in children:
            module, walked = children[part], f"{walked}.{part}"
            continue
        own = [n for n, _ in module.named_parameters(recurse=False)]
        if part in own and part == path.split(".")[-1]:
            return
        valid = list(children) + own
        listing = ", ".join(valid) if valid else "none"
        raise ConfigError(f"train.freeze entry {entry!r}: {walked} has no part {part!r}"
                          f"{suggest(part, valid)}; its parts: {listing}")


def freeze(entries: list[str] | None, nets: dict[str, nn.Module], stepped: set[str]) -> Frozen:
    """Mark the parameters `entries` name as frozen (requires_grad off) and report them.

    Args:
        entries: `train.freeze`: NET:N (NET's first N blocks, see `blocks`) or NET.PATH
            (every parameter under that module path).
        nets: the run's networks by name (before any wrapping).
        stepped: the networks an optimiser trains; none of them may be frozen whole.

    Raises:
        ConfigError: an unknown network or module (the valid names listed), N not below the
            number of blocks, a part without parameters, or a whole trained network.

    Example:
        >>> frozen = freeze(["D:2", "G.mapping"], stylegan_nets, {"G", "D"})  # 64x64 RGB, defaults
        >>> frozen.lines
        ['train.freeze D:2 -> D.fromrgb, D.blocks.0 (119,232 parameters)',
         'train.freeze G.mapping -> G.mapping (66,048 parameters)']
    """
    frozen = Frozen()
    for entry in entries or ():
        net_name, count, path = parse_freeze(entry)
        if net_name not in nets:
            raise ConfigError(f"train.freeze entry {entry!r}: this model has no network {net_name!r}"
                              f"{suggest(net_name, list(nets))}; its networks: {', '.join(nets)}")
        net = nets[net_name]
        if count is not None:
            found = blocks(net, net_name)
            if count >= len(found):
                shown = ", ".join("+".join(block) for block in found)
                raise ConfigError(f"train.freeze entry {entry!r}: {net_name} has {len(found)} blocks from "
                                  f"the input ({shown}); freeze fewer, so that one is left to train")
            paths = [p for block in found[:count] for p in block]
        else:
            _resolve_path(net, net_name, path, entry)
            paths = [path]
        chosen = {n: p for n, p in net.named_parameters() if _under(n, paths)}
        if not chosen:
            raise ConfigError(f"train.freeze entry {entry!r}: {net_name}.{path} holds no parameters "
                              f"(nothing to freeze)")
        frozen.norms += [m for n, m in net.named_modules() if _under(n, paths)
                         and isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
        names = frozen.names.setdefault(net_name, set())
        for name, param in chosen.items():
            if name not in names:
                names.add(name)
                frozen.params.append(param)
        size = sum(p.numel() for p in chosen.values())
        frozen.lines.append(f"train.freeze {entry} -> {', '.join(f'{net_name}.{p}' for p in paths)} "
                            f"({size:,} parameters)")
    for net_name, names in frozen.names.items():
        total = sum(1 for _ in nets[net_name].parameters())
        if net_name in stepped and len(names) == total:
            raise ConfigError(f"train.freeze freezes every parameter of {net_name}, which this run "
                              f"trains; leave some of it to train")
    frozen.hold()
    return frozen


# Starting from another run.
def source_checkpoint(spec: str) -> tuple[Path, Path, str]:
    """`train.init_from` -> (the run, its checkpoint file, the checkpoint's name): RUN (its
    `last`), RUN:NAME (last, best, step-000500) or a .safetensors file."""
    head, sep, tail = spec.rpartition(":")
    run, name = (head, tail) if sep and head and CHECKPOINT_NAME.match(tail) else (spec, "last")
    try:
        if run.endswith(".safetensors"):
            path = Path(run)
            if not path.is_file():
                raise CheckpointError(f"checkpoint {run!r} does not exist")
            return path, path, path.stem
        return Path(run), rundir.find_checkpoint(run, name), name
    except CheckpointError as error:
        raise CheckpointError(f"train.init_from={spec!r}: {error}") from None


def _option_changes(saved: dict, config: Config) -> str:
    """'model options differ: g_width 64 there, 32 here' (or '' when none do)."""
    now = config.to_dict()
    changes = []
    for section in ("model", "objective"):
        for key in sorted(set(saved.get(section, {})) | set(now[section])):
            if section == "objective" and key != "spectral_norm":
                continue  # only spectral norm changes how D's weights are stored
            was, new = saved.get(section, {}).get(key), now[section].get(key)
            if was != new:
                changes.append(f"{section}.{key} {was!r} there, {new!r} here")
    return f"; options differ: {', '.join(changes)}" if changes else ""


def load_init(spec: str, nets: dict[str, nn.Module], ema, sample_net: str | None, shape: DataShape,
              config: Config) -> dict:
    """Copy another run's networks (and EMA) into `nets` (and `ema.shadow`); return the report.

    Tensors are copied in place, by name; a tensor whose shape differs only where the two
    runs' numbers of classes differ keeps this run's initialisation (reported as
    re-initialised). A family, resolution, channel count, conditioning or other shape that
    differs is a ConfigError naming both values.

    Args:
        spec: `train.init_from` (RUN, RUN:CHECKPOINT or a .safetensors file).
        nets: this run's networks, built and initialised.
        ema: this run's EMA (or None); its shadow takes the source's EMA, or, when the source
            kept none, a copy of the loaded network.
        sample_net: the network the EMA averages.
        shape: what this run's networks were built for.
        config: this run's config (for messages and the model family).

    Example:
        >>> report = load_init("runs/pretrained", trainer.nets, trainer.ema, "G", trainer.shape, config)
        >>> report["loaded"], report["reinitialised"]
        ({'G': 14, 'D': 13, 'EMA of G': 14}, [])
    """
    run, path, name = source_checkpoint(spec)
    meta = checkpoint.read_meta(path)
    saved = meta["config"]
    where = f"train.init_from: run {spec!r}"
    family, mine = saved["model"]["name"], config.model.name
    if family != mine:
        raise ConfigError(f"{where} trained model {family!r}, this run trains {mine!r}; weights "
                          f"transfer between runs of one model family")
    source_shape = meta["shape"]
    for key, label in SHAPE_KEYS.items():
        was, now = source_shape.get(key), getattr(shape, key)
        if was != now:
            raise ConfigError(f"{where} was trained with {label}={was}, this run has {label}={now}; "
                              f"weights transfer only between runs of one resolution and channel count")
    classes_was, classes_now = source_shape.get("num_classes", 0), shape.num_classes
    if bool(classes_was) != bool(classes_now):
        raise ConfigError(f"{where} was trained with model.conditional={str(bool(classes_was)).lower()}, "
                          f"this run has model.conditional={str(bool(classes_now)).lower()}; "
                          f"conditional and unconditional networks differ")

    report = {"source": str(run.resolve()), "checkpoint": name, "file": str(path.resolve()), "source_step": meta["step"],
              "model": family, "source_data": _data_name(saved["data"]),
              "source_classes": classes_was, "classes": classes_now,
              "loaded": {}, "reinitialised": [], "skipped": []}
    pairs = [(net_name, net, f"nets.{net_name}.") for net_name, net in nets.items()]
    has_ema = meta.get("has_ema") and meta.get("sample_net") == sample_net
    if ema is not None and has_ema:
        pairs.append((f"EMA of {sample_net}", ema.shadow, f"ema.{sample_net}."))
    elif has_ema:
        report["skipped"].append({"what": f"EMA of {sample_net}",
                                  "why": "this run keeps no EMA (train.ema_decay=0)"})
    tensors, _ = checkpoint.load(path, "nets.")
    if has_ema and ema is not None:
        tensors.update(checkpoint.load(path, "ema.")[0])
    for net_name in sorted({k.split(".")[1] for k in tensors if k.startswith("nets.")} - set(nets)):
        report["skipped"].append({"what": net_name, "why": "this run has no such network"})

    # Check every tensor before copying any: a refusal leaves the networks as they were.
    plan = []
    for label, net, prefix in pairs:
        target = net.state_dict()
        source = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        differ = sorted(set(target) ^ set(source))
        if differ:
            here = [k for k in differ if k in target][:3]
            there = [k for k in differ if k in source][:3]
            raise ConfigError(f"{where}: {label}'s tensors differ (only here: {', '.join(here) or 'none'}; "
                              f"only there: {', '.join(there) or 'none'}){_option_changes(saved, config)}")
        for key, value in target.items():
            was = source[key]
            if was.shape == value.shape:
                plan.append((value, was))
            elif _class_tensor(was.shape, value.shape, classes_was, classes_now):
                report["reinitialised"].append({"tensor": f"{prefix}{key}", "source_shape": list(was.shape),
                                                "shape": list(value.shape)})
            else:
                raise ConfigError(f"{where}: {label}.{key} has shape {tuple(was.shape)} there, "
                                  f"{tuple(value.shape)} here{_option_changes(saved, config)}")
        report["loaded"][label] = sum(1 for key in target if source[key].shape == target[key].shape)
    with torch.no_grad():
        for value, was in plan:
            value.copy_(was)
    if ema is not None and not has_ema:
        ema.restart_from(nets[sample_net])
        report["skipped"].append({"what": f"EMA of {sample_net}",
                                  "why": f"run {spec!r} kept none; averaging starts from the loaded "
                                         f"{sample_net}"})
    report["lines"] = _describe(report)
    return report


def _data_name(data: dict) -> str:
    """'mnist', or 'mnist classes [0, 1, 2]' / 'mnist (100 images)' for a part of it."""
    name = data["name"]
    if data.get("classes") is not None:
        name += f" classes {data['classes']}"
    return name + (f" ({data['limit']} images)" if data.get("limit") is not None else "")


def _class_tensor(was: torch.Size, now: torch.Size, classes_was: int, classes_now: int) -> bool:
    """Whether two shapes differ exactly where one run's class count stands in the other's
    (a class embedding, a projection, a classifier's output layer)."""
    if classes_was == classes_now or len(was) != len(now):
        return False
    differing = [(a, b) for a, b in zip(was, now) if a != b]
    return bool(differing) and all(a == classes_was and b == classes_now for a, b in differing)


def _describe(report: dict) -> list[str]:
    loaded = ", ".join(f"{label} {count}" for label, count in report["loaded"].items())
    lines = [f"init-from {report['source']} ({report['checkpoint']}, step {report['source_step']}, "
             f"{report['model']} on {report['source_data']}): loaded {sum(report['loaded'].values())} "
             f"tensors ({loaded}); optimisers start fresh at step 0"]
    if report["reinitialised"]:
        names = ", ".join(item["tensor"] for item in report["reinitialised"])
        lines.append(f"init-from: re-initialised {len(report['reinitialised'])} class tensors "
                     f"({report['source_classes']} classes there, {report['classes']} here): {names}")
    for item in report["skipped"]:
        lines.append(f"init-from: skipped {item['what']}: {item['why']}")
    return lines


def save_report(run_dir: Path, report: dict, frozen: Frozen) -> None:
    """RUN/init_from.json: what was loaded, re-initialised, skipped and frozen."""
    atomic.write_json(Path(run_dir) / REPORT, {**report, "frozen": frozen.summary()})
