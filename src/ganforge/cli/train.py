"""`ganforge train`: train a model; with no options, the DCGAN on the bundled digits."""
from __future__ import annotations

import argparse
import sys

from ..config import Config, dump_yaml

# Option -> config key. Defaults shown in --help come from the config dataclasses. A kind of
# bool is a flag (--conditional sets the key to true).
OPTIONS = {
    "task": ("task", str, "what to train: generate, inpaint, replace, super-resolve, denoise, "
                          "colorize, enhance, pix2pix, translate (ganforge tasks lists them)"),
    "dataset": ("data.name", str, "data set: digits, mnist, fashion-mnist, cifar10, folder:PATH, "
                                  "npz:PATH, photos, patches:PATH, paired:PATH, mosaic:BASE"),
    "dataset_b": ("data.name_b", str, "translate: domain B's data set (--dataset is domain A)"),
    "degrade": ("data.degrade", str, "editing tasks: how inputs are made, e.g. noise:25, mask:box"),
    "data_dir": ("data.data_dir", str, "directory of mnist / fashion-mnist / cifar10 files (default ./data)"),
    "model": ("model.name", str, "architecture (ganforge models lists them)"),
    "resolution": ("data.resolution", int, "image size in pixels"),
    "channels": ("data.channels", int, "1 (gray) or 3 (RGB)"),
    "conditional": ("model.conditional", bool, "class-conditional G and D (a labelled data set)"),
    "loss": ("objective.loss", str, "GAN loss: ns, lsgan, wgan, wgan-gp, hinge"),
    "d_steps": ("objective.d_steps", int, "GAN: discriminator updates per generator update"),
    "augment": ("objective.augment", str, "DiffAugment policy for what D sees, e.g. "
                                          "translation,color,cutout ('' off)"),
    "ada": ("objective.ada", bool, "adapt the augmentation probability to D's overfitting (ADA; "
                                   "with the --augment policy, or translation,color,cutout)"),
    "batch_size": ("train.batch_size", int, "images per batch"),
    "steps": ("train.steps", int, "optimiser steps in total (a resumed run counts on); with "
                                  "--time-budget and no --steps: until the budget is spent"),
    "time_budget": ("train.time_budget", float, "seconds; stop cleanly when spent. Without --steps "
                                                "(nor train.steps in the preset, config file or task) "
                                                "the budget is the limit and picks a recipe for "
                                                "what it buys on this machine (README: Sized for "
                                                "the budget); a decaying train.lr_schedule of "
                                                "yours then needs --steps"),
    "lr": ("train.lr", float, "Adam learning rate of every network"),
    "lr_g": ("train.lr_g", float, "G's learning rate (default: --lr)"),
    "lr_d": ("train.lr_d", float, "D's learning rate (default: --lr)"),
    "ema": ("train.ema_decay", float, "decay of the generator's weight average used for sampling (0: off)"),
    "seed": ("train.seed", int, "random seed"),
    "device": ("train.device", str, "auto, cpu, cuda, cuda:N, mps"),
    "precision": ("train.precision", str, "fp32, bf16, fp16 (CUDA) or auto"),
    "init_from": ("train.init_from", str, "start from another run's weights: RUN or RUN:CHECKPOINT "
                                          "(networks and EMA; fresh optimisers, step 0; reported in "
                                          "RUN_DIR/init_from.json); not with --resume"),
    "freeze": ("train.freeze", str, "keep parts fixed, comma-separated: NET:N (NET's first N blocks "
                                    "from the input, FreezeD: D:2) or NET.PATH (e.g. G.mapping)"),
    "eval_every": ("log.eval_every", int, "evaluate every N steps into metrics.jsonl, keep the best by FID (0: off)"),
    "grid": ("log.grid_size", int, "images in each sample grid"),
}
# How `--help` groups them. Commands that train a classifier (they pass `defaults`) leave out the
# GAN objective's options and those only a generator or an editor has.
GROUPS = {
    "data and model": ("task", "dataset", "dataset_b", "degrade", "data_dir", "model", "resolution",
                       "channels", "conditional"),
    "GAN objective": ("loss", "d_steps", "augment", "ada"),
    "optimisation": ("batch_size", "steps", "time_budget", "lr", "lr_g", "lr_d", "ema", "seed",
                     "device", "precision"),
    "transfer": ("init_from", "freeze"),
    "logging": ("eval_every", "grid"),
}
GENERATION_ONLY = {"task", "dataset_b", "degrade", "conditional", "scale", "lr_g", "lr_d", "ema", "grid"}


def _default(key: str, defaults: dict):
    """The default of a config key for this command, for --help."""
    from ..objectives.gan import GANArgs

    if key in defaults:
        return defaults[key]
    if "." not in key:
        return getattr(Config(), key)
    section, name = key.split(".")
    if section == "objective":
        return getattr(GANArgs(), name, None)
    return getattr(getattr(Config(), section), name)


def add_training_options(parser: argparse.ArgumentParser, defaults: dict, skip: tuple = ()) -> None:
    """The options shared by every command that trains (train, classify train), in groups;
    `skip` leaves out options a command sets itself."""
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for option in names:
            key, kind, text = OPTIONS[option]
            if option in skip or (defaults and (key.startswith("objective.") or option in GENERATION_ONLY)):
                continue
            flag = f"--{option.replace('_', '-')}"
            if kind is bool:
                group.add_argument(flag, action="store_true", default=None,
                                   help=f"{text} [{key}=true; default: {_default(key, defaults)}]")
            else:
                group.add_argument(flag, type=kind, default=None,
                                   help=f"{text} [{key}; default: {_default(key, defaults)}]")
        if title == "data and model" and not defaults:
            group.add_argument("--scale", type=int, default=None, choices=(2, 3, 4),
                               help="super-resolve: the upscaling factor [sets data.degrade=downscale:N "
                                    "and, unless --resolution is given, data.resolution=32*N]")
    run = parser.add_argument_group("run and config")
    run.add_argument("--out", default=None,
                     help="run directory [default: runs/<time>-<model>-<dataset>]")
    run.add_argument("--resume", metavar="RUN_DIR", default=None,
                     help="continue the run in RUN_DIR from its last checkpoint")
    run.add_argument("--preset", metavar="NAME", default=None,
                     help="start from a named preset (ganforge presets lists them); "
                          "--config, the options and --set override it")
    run.add_argument("--config", metavar="FILE.yaml", default=None,
                     help="YAML config file (sections: data, model, objective, train, log)")
    run.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                     help="override any config key, e.g. --set log.sample_every=100 "
                          "--set model.g_width=32 (repeatable)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the resolved config and exit without training, after checking that the "
                          "data opens (never downloaded) and the networks and objective build for it")
    run.add_argument("--quiet", action="store_true", help="no progress output")


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="train a model (default: DCGAN on the bundled digits)",
        description="Train a model and write a run directory (config.yaml, checkpoints/, "
                    "samples/, metrics.jsonl). Options override the config file; --set "
                    "overrides any key.")
    add_training_options(parser, {})


def resolve(args: argparse.Namespace, defaults: dict):
    """Config from layers: the command's defaults (not on resume) < --preset or --resume's
    run < --config FILE < the named options < --set."""
    from ..resolve import make_config
    from ..config import load_yaml, parse_override, set_key
    from ..errors import ConfigError

    if args.resume and args.out and args.out != args.resume:
        raise ConfigError("--out and --resume name different directories; a resumed run "
                          "stays in its own directory")
    if args.resume and getattr(args, "init_from", None):
        raise ConfigError("--init-from starts a new run from another run's weights; --resume "
                          "continues a run with its own: give one of them")
    base: dict = {}
    if not args.resume:
        for key, value in defaults.items():
            base = set_key(base, key, value)
    if args.preset and args.resume:
        raise ConfigError("--preset starts a run; --resume continues one with its own config")
    overrides = {key: getattr(args, option) for option, (key, _, _) in OPTIONS.items()
                 if getattr(args, option, None) is not None}
    if getattr(args, "scale", None) is not None:
        if args.degrade is not None:
            raise ConfigError("give --scale or --degrade, not both")
        overrides["data.degrade"] = f"downscale:{args.scale}"
        if args.resolution is None:  # input crops of 32 pixels at every scale (EDSR uses 48)
            overrides["data.resolution"] = 32 * args.scale
    if args.out is not None:
        overrides["out"] = args.out
    if args.quiet:
        overrides["log.progress"] = False
    overrides.update(parse_override(text) for text in args.set)
    config = make_config(load_yaml(args.config) if args.config else None, preset=args.preset or None,
                         base=base, resume=args.resume, overrides=overrides, step_rate=_step_rate())
    _check_out(config.out)
    if config.sized_for_budget or config.budget_scale != 1.0:
        print(_budget_note(config), file=sys.stderr)
    return config


def _step_rate():
    """The timer of what a second buys on this machine (bench.reference_step_rate), or None
    under torchrun: each process would time its own rate and might pick another recipe."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    from ..bench import reference_step_rate
    return reference_step_rate


def _as_set(value) -> str:
    """A value as `--set KEY=VALUE` takes it (true/false, not 1/0)."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _budget_note(config) -> str:
    """One stderr line: what the budget counts as here, and what it chose."""
    from ..resolve import REFERENCE_STEP_RATE

    budget, scale = config.train.time_budget, config.budget_scale
    here = "" if scale == 1.0 else (
        f" (the reference DCGAN step runs at {scale * REFERENCE_STEP_RATE:.3g} steps/s here against "
        f"{REFERENCE_STEP_RATE:g} on the machine the rules were measured on: it counts as {budget * scale:.0f} s)")
    if not config.sized_for_budget:
        return f"--time-budget {budget:g} s{here}: no change to the recipe"
    chosen = ", ".join(f"{key}={_as_set(value)}" for key, value in config.sized_for_budget.items())
    what = "is short: networks sized for it" if config.budget_is_short else "recipe"
    return f"--time-budget {budget:g} s{here} {what} ({chosen}); give a key to choose it yourself"


def _check_out(out: str | None) -> None:
    """The run directory must be a directory, or creatable as one: not an existing file, nor
    below one."""
    from pathlib import Path

    from ..errors import ConfigError

    if out is None:
        return
    for path in (Path(out), *Path(out).parents):
        if path.exists():
            if not path.is_dir():
                what = "is" if path == Path(out) else f"is below {str(path)!r}, which is"
                raise ConfigError(f"--out {out!r} {what} an existing file, not a directory; "
                                  f"choose a directory for the run")
            return


def dry_run_check(config) -> str:
    """Build what training would build (data read, never downloaded; networks and objective on
    the CPU): a wrong key raises here; data that cannot be read is only noted, as a dry run
    resolves a config for data that may not be on this machine yet."""
    from ..errors import DataError
    from ..training.trainer import check_build

    try:
        return check_build(config)
    except DataError as error:
        return f"the data was not read, so the networks and objective were not built ({error})"


def train_and_report(args: argparse.Namespace, defaults: dict):
    """Resolve, then either print the config (--dry-run) or train; returns the Run or None."""
    from ..api import train

    config = resolve(args, defaults)
    if args.dry_run:
        checked = dry_run_check(config)   # a wrong key stops here, before any output
        print(dump_yaml(config), end="")
        print(f"dry run: {checked}", file=sys.stderr)
        return None
    from .. import distributed

    result = train(config, resume=args.resume)
    if distributed.is_main():
        print(f"{result.dir}: step {result.step}, {result.elapsed_s:.1f} s ({result.stop_reason})")
    distributed.teardown()
    return result


def run(args: argparse.Namespace) -> int:
    train_and_report(args, {})
    return 0
