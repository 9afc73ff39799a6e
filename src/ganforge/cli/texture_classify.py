"""`ganforge texture classify train|eval`: recognise textures with the CNN classifier, and
measure it against the LBP nearest-neighbour baseline on the same held-out crops.

Training is `ganforge classify train` on `crops:DIR` (crops whose test split comes from a
region of each image never trained on, see ganforge.data.crops), at 64-pixel crops by
default; evaluation reports both methods side by side in RUN/texture-eval.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import atomic
from ..objectives.classifier import CLASSIFY_DEFAULTS
from .classify import format_report
from .train import add_training_options, train_and_report
from . import options

DEFAULTS = {**CLASSIFY_DEFAULTS, "data.resolution": 64}
REPORT = "texture-eval.json"


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(name, help="recognise textures: a CNN classifier against an LBP baseline",
                                 description="Train a CNN classifier on texture crops and compare it "
                                             "with local-binary-pattern histograms and a nearest "
                                             "neighbour on the same held-out crops.")
    actions = parser.add_subparsers(dest="classify_action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train the CNN on crops of DIR, then evaluate both",
                               description="Train a classifier on crops:DIR (the test split is the "
                                           "right quarter of every image), then run "
                                           "`texture classify eval` on the run.")
    train.add_argument("dir", metavar="DIR",
                       help="folder with one sub-folder of images per texture class (or one image "
                            "per class); 'textures' for scikit-image's brick, grass and gravel, "
                            "'textures-8' for those and five more textured photos from its wheel")
    add_training_options(train, DEFAULTS, skip=("dataset", "data_dir"))
    train.add_argument("--dataset", default=None, help=argparse.SUPPRESS)  # refused by name below
    evaluate = actions.add_parser("eval", help="CNN vs LBP baseline on the held-out crops",
                                  description="Evaluate a texture classifier on its data set's test "
                                              f"crops, fit the LBP baseline on its train crops, print "
                                              f"both and write RUN/{REPORT}.")
    evaluate.add_argument("run", metavar="RUN", help="run directory of ganforge texture classify train")
    evaluate.add_argument("--checkpoint", default="last", help="[default: last]")
    evaluate.add_argument("--device", default="cpu", type=options.device, help="[default: cpu]")


def dataset_name(folder: str) -> str:
    """DIR as a data set name: 'textures' (or a name already given as crops:...) is kept."""
    return folder if folder.startswith("crops:") else f"crops:{folder}"


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.classify_action == "train":
        if args.dataset is not None:
            raise ConfigError(f"--dataset {args.dataset!r}: texture classify train reads its data "
                              f"set from DIR ({args.dir!r}); drop --dataset")
        args.dataset = dataset_name(args.dir)
        result = train_and_report(args, DEFAULTS)
        if result is not None:
            evaluate(result.dir)
        return 0
    evaluate(args.run, args.checkpoint, args.device)
    return 0


def evaluate(run_dir, checkpoint_name: str = "last", device: str = "cpu") -> dict:
    """Score the run's CNN and the LBP baseline on its test crops; print and save both."""
    from ..data import load_dataset
    from ..errors import DataError
    from ..inference import load_classifier
    from ..texture.recognition import SCALES, lbp_baseline

    clf = load_classifier(run_dir, checkpoint_name, device)
    config = clf.meta_config().data
    train, test = load_dataset(config, "train"), load_dataset(config, "test")
    if test.labels is None:
        raise DataError(f"data set {config.name!r} has no labels to evaluate against")
    if test.class_names != clf.class_names:
        raise DataError(f"data set {config.name!r} now has classes {test.class_names}; the run "
                        f"was trained on {clf.class_names}")
    where = {"data_set": config.name, "split": "test"}
    cnn = {**clf.report(test), **where, "checkpoint": checkpoint_name,
           "model": clf.meta_config().model.name}
    start = time.perf_counter()
    lbp = {**lbp_baseline(train, test), **where, "method": "uniform LBP histograms, 1-NN chi-square",
           "scales": [list(scale) for scale in SCALES]}
    lbp["seconds"] = round(time.perf_counter() - start, 2)
    report = {**where, "resolution": config.resolution, "test_images": len(test),
              "train_images": len(train), "cnn": cnn, "lbp": lbp}
    print(f"CNN ({cnn['model']}, checkpoint {checkpoint_name}):\n{format_report(cnn, clf.class_names)}")
    print(f"LBP baseline (nearest neighbour of {len(train)} train crops):\n"
          f"{format_report(lbp, clf.class_names)}")
    print(side_by_side(report))
    path = Path(run_dir) / REPORT
    atomic.write_json(path, report)
    print(f"wrote {path}")
    return report


def side_by_side(report: dict) -> str:
    """Both methods' accuracy and macro precision/recall/F1, one row each."""
    lines = [f"{report['data_set']}: {report['test_images']} test crops of "
             f"{report['resolution']}x{report['resolution']}",
             f"{'method':<12} {'accuracy':>8} {'precision':>9} {'recall':>7} {'f1':>7}"]
    for label, key in (("CNN", "cnn"), ("LBP + 1-NN", "lbp")):
        row = report[key]
        lines.append(f"{label:<12} {row['accuracy']:8.4f} {row['macro_precision']:9.4f} "
                     f"{row['macro_recall']:7.4f} {row['macro_f1']:7.4f}")
    return "\n".join(lines)


SUBCOMMANDS = {"classify": (add_parser, run)}
