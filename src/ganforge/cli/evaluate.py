"""`ganforge evaluate RUN`: FID, KID, IS, precision/recall, density/coverage, mode-collapse
signals (per-class diversity, warnings far below the floor), beside the real-data floor, and
with --memorization a copy audit; for editing runs PSNR/SSIM beside classical baselines; for
translation runs realism and content preservation in both directions beside the identity
and histogram-matching baselines; for texture runs similarity to the exemplar, diversity and
seam scores beside random tiling.
Written to RUN/eval.json."""
from __future__ import annotations

import argparse

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="metrics of a generator's images beside the real-data floor",
        description="Evaluate a GAN or VAE run, or an editing run (PSNR/SSIM on held-out images "
                    "beside the classical method, FID of inpainted composites, replacement "
                    "accuracy). Features come from a classifier ganforge trains "
                    "on the run's data set (once, cached in $GANFORGE_CACHE or ~/.cache/ganforge) "
                    "or from Inception-v3 with --inception-weights.")
    parser.add_argument("run", metavar="RUN", help="run directory of a generative model")
    parser.add_argument("-n", type=int, default=None,
                        help="samples to generate [default: as many as held-out real images, at most 10000]")
    parser.add_argument("--seed", type=int, default=0, help="noise seed [default: 0]")
    parser.add_argument("--checkpoint", default="last", help="last, best, step-NNNNNN [default: last]")
    parser.add_argument("--classifier", metavar="RUN", default=None,
                        help="a ganforge classify run to take features from [default: cached]")
    parser.add_argument("--inception-weights", metavar="FILE", default=None,
                        help="local Inception-v3 FID weights (pt_inception-2015-12-05); never downloaded")
    parser.add_argument("--device", default="cpu", type=options.device, help="[default: cpu]")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (there is none either when stderr is not a terminal)")
    parser.add_argument("--no-cas", action="store_true",
                        help="conditional runs: skip the classification accuracy score (it trains a "
                             "classifier on samples, a minute or two)")
    parser.add_argument("--memorization", action="store_true",
                        help="also find each sample's nearest training image (features and pixels), "
                             "report the share closer than held-out real images typically are, and "
                             "write RUN/memorization.png of the closest pairs")
    parser.add_argument("--truncation", type=float, default=None, metavar="PSI",
                        help="generators: score samples drawn with the truncation trick, PSI in "
                             "[0, 2]: below 1 precision up and recall down, above 1 the other way "
                             "[default: none]")
    parser.add_argument("--keep-best", type=float, default=None, metavar="SHARE",
                        help="GANs: score the best SHARE of candidates by the run's discriminator, "
                             "SHARE in (0, 1] (written to RUN/eval-keep-best-SHARE.json) [default: all]")
    parser.add_argument("--resolution", type=int, default=None, metavar="PIXELS",
                        help="generators: score in the feature space of this resolution (samples "
                             "resized like the real images), to compare runs trained at different "
                             "sizes in one space (written to RUN/eval-PIXELSpx.json) [default: the run's]")
    parser.add_argument("--tile", type=int, default=None, metavar="PIXELS",
                        help="editing runs: run the model in tiles of this size [default: whole images]")


def run(args: argparse.Namespace) -> int:
    from .. import checkpoint, rundir
    from ..errors import ConfigError
    from ..evaluate import MIN_SAMPLES, eval_file_name, evaluate_run, format_table

    meta = checkpoint.read_meta(rundir.find_checkpoint(args.run, args.checkpoint))
    config = meta.get("config", {})
    if config.get("task") == "translate" or config.get("model", {}).get("name") == "cyclegan":
        kind = "translation"
    elif config.get("model", {}).get("name") == "spatial":
        kind = "texture"
    else:
        kind = "editing" if meta.get("shape", {}).get("in_channels") else "generator"
    if kind != "generator":
        if args.n is not None and args.n < 1:
            raise ConfigError(f"-n {args.n}: must be at least 1")
        for flag, given in (("--memorization", args.memorization), ("--truncation", args.truncation is not None),
                            ("--keep-best", args.keep_best is not None),
                            ("--resolution", args.resolution is not None)):
            if given:
                raise ConfigError(f"{flag} is for generators (GAN, VAE); {args.run!r} is "
                                  f"{'an editing' if kind == 'editing' else 'a ' + kind} run")
    if kind == "translation":
        from ..evaluate_translate import evaluate_translation, format_translation_table

        if args.classifier:
            raise ConfigError(f"--classifier: {args.run!r} is a translation run; each domain gets "
                              f"its own cached classifier (or pass --inception-weights)")
        report = evaluate_translation(args.run, args.n, args.seed, args.checkpoint, args.inception_weights,
                                      args.device, args.tile)
        print(format_translation_table(report))
    elif kind == "texture":
        from ..texture.evaluation import evaluate_texture, format_texture_table

        report = evaluate_texture(args.run, args.n or 4, seed=args.seed, checkpoint=args.checkpoint,
                                  device=args.device)
        print(format_texture_table(report))
    elif kind == "editing":
        from ..evaluate_edit import evaluate_editing, format_edit_table

        report = evaluate_editing(args.run, args.n, args.seed, args.checkpoint, args.device,
                                  args.tile, args.classifier)
        print(format_edit_table(report))
    if kind != "generator":
        print(f"wrote {args.run}/eval.json")
        return 0
    if args.n is not None and args.n < MIN_SAMPLES:
        raise ConfigError(f"-n {args.n}: must be at least {MIN_SAMPLES}")
    from .progress import progress_bar

    with progress_bar(0, "sample", args.quiet) as bar:
        report = evaluate_run(args.run, args.n, args.seed, args.checkpoint, args.classifier,
                              args.inception_weights, args.device, memorization=args.memorization,
                              cas=not args.no_cas, progress=bar, truncation=args.truncation,
                              keep_best=args.keep_best, resolution=args.resolution)
    print(format_table(report))
    own = "resolution" not in report["setup"]
    name = eval_file_name(args.truncation, args.keep_best, None if own else args.resolution)
    print(f"wrote {args.run}/{name}" + (f" and {report['memorization']['grid']}" if "memorization" in report else ""))
    return 0
