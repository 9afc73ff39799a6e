"""`ganforge classify train|eval`: CNN classifiers, also the feature extractors of the metrics."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import atomic
from ..errors import ConfigError, DataError
from ..objectives.classifier import CLASSIFY_DEFAULTS as DEFAULTS
from .train import add_training_options, train_and_report
from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(name, help="train and evaluate CNN classifiers (cnn, resnet-cnn)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a classifier on a labelled data set",
                               description="Train a classifier, then evaluate it on the test split.")
    add_training_options(train, DEFAULTS)
    add_synthetic_options(train)
    evaluate = actions.add_parser("eval", help="accuracy, precision, recall, F1, confusion matrix",
                                  description="Evaluate a trained classifier on a data set's "
                                              "test split (or another labelled data set).")
    evaluate.add_argument("run", metavar="RUN", help="run directory of ganforge classify train")
    evaluate.add_argument("--dataset", default=None,
                          help="labelled data set to evaluate on [default: the run's own]")
    evaluate.add_argument("--split", default="test", choices=("train", "test"),
                          help="which split [default: test]")
    evaluate.add_argument("--checkpoint", default="last", help="[default: last]")
    evaluate.add_argument("--device", default="cpu", type=options.device, help="[default: cpu]")


def add_synthetic_options(parser: argparse.ArgumentParser) -> None:
    """Samples of a frozen conditional generator, and a frozen editing model, as training data."""
    group = parser.add_argument_group("synthetic data")
    group.add_argument("--synthetic", metavar="RUN", default=None,
                       help="also train on fresh samples of this class-conditional generator run "
                            "(its EMA weights, frozen; drawn on the fly) [objective.synthetic]")
    ratio = group.add_mutually_exclusive_group()
    ratio.add_argument("--synthetic-ratio", metavar="R", type=float, default=None,
                       help="synthetic images per real image in each batch "
                            "[objective.synthetic_ratio; default: 1.0]")
    ratio.add_argument("--synthetic-only", action="store_true",
                       help="train on samples alone (the Classification Accuracy Score's setting) "
                            "[objective.synthetic_only]")
    group.add_argument("--synthetic-labels", choices=("balanced", "prior"), default=None,
                       help="classes of the samples: in turn, or in the real data's proportions "
                            "[objective.synthetic_labels; default: balanced]")
    group.add_argument("--synthetic-truncation", metavar="PSI", type=float, default=None,
                       help="truncation of the samples, in [0, 2]: below 1 typical rather than varied "
                            "[objective.synthetic_truncation; default: 1, none]")
    group.add_argument("--synthetic-keep-best", metavar="SHARE", type=float, default=None,
                       help="keep the best SHARE of candidate samples by the generator run's "
                            "discriminator [objective.synthetic_keep_best; default: 1, all]")
    group.add_argument("--augment-with", metavar="RUN", default=None,
                       help="an editing run (denoise, enhance, inpaint, super-resolve, colorize) "
                            "that re-draws a share of the real images [objective.augment_with]")
    group.add_argument("--augment-share", metavar="P", type=float, default=None,
                       help="share of the real images it edits [objective.augment_share; default: 0.5]")


def synthetic_overrides(args: argparse.Namespace) -> list[str]:
    """The --set lines the synthetic options stand for (run paths made absolute, so a resumed
    run finds them from any directory); the user's own --set lines come after and win."""
    lines = []
    for option in ("synthetic", "augment_with"):
        value = getattr(args, option, None)
        if value is not None:
            lines.append(f"objective.{option}={json.dumps(str(Path(value).resolve()))}")
    for option in ("synthetic_ratio", "synthetic_labels", "synthetic_truncation", "synthetic_keep_best",
                   "augment_share"):
        value = getattr(args, option, None)
        if value is not None:
            lines.append(f"objective.{option}={json.dumps(value)}")
    if getattr(args, "synthetic_only", False):
        lines.append("objective.synthetic_only=true")
    return lines


def check_synthetic(args: argparse.Namespace) -> None:
    """Before training: options that need a generator run have one. (That its classes are the
    data set's, by name, the trainer asks the objective before the run directory is made.)"""
    from .train import resolve

    if resolve(args, DEFAULTS).objective.args.get("synthetic"):
        return
    given = (args.synthetic_ratio, args.synthetic_labels, args.synthetic_truncation, args.synthetic_keep_best)
    if any(value is not None for value in given):
        raise ConfigError("--synthetic-ratio, --synthetic-labels, --synthetic-truncation and "
                          "--synthetic-keep-best need --synthetic RUN (a class-conditional generator run)")


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        args.set = synthetic_overrides(args) + args.set
        check_synthetic(args)
        result = train_and_report(args, DEFAULTS)
        if result is not None:
            try:
                evaluate(result.dir, None, "test", "last", "cpu")
            except DataError as error:  # e.g. npz: and folder: sets have no test split
                print(f"not evaluated: {error}")
        return 0
    evaluate(args.run, args.dataset, args.split, args.checkpoint, args.device)
    return 0


def evaluate(run_dir, dataset, split: str, checkpoint_name: str, device: str) -> dict:
    """Print and save (RUN/classify-eval.json, RUN/confusion.png) the classifier report."""
    from ..data import load_dataset
    from ..imageio import save_png
    from ..inference import confusion_png, load_classifier

    clf = load_classifier(run_dir, checkpoint_name, device)
    data_config = clf.meta_config().data
    if dataset is not None:
        data_config.name = dataset
    try:
        data = load_dataset(data_config, split)
    except DataError as error:
        if split == "test":
            raise DataError(f"{error}; evaluate on another set with --dataset or --split train") from None
        raise
    if data.labels is None:
        raise DataError(f"data set {data_config.name!r} has no labels to evaluate against")
    report = clf.report(data)
    report.update({"data_set": data_config.name, "split": split, "checkpoint": checkpoint_name})
    print(format_report(report, clf.class_names))
    run_dir = Path(run_dir)
    atomic.write_json(run_dir / "classify-eval.json", report)
    save_png(confusion_png(report["confusion_matrix"], clf.class_names), run_dir / "confusion.png")
    print(f"wrote {run_dir / 'classify-eval.json'} and {run_dir / 'confusion.png'}")
    return report


def format_report(report: dict, class_names: list[str]) -> str:
    lines = [f"{report['data_set']} ({report['split']}, {report['images']} images): "
             f"accuracy {report['accuracy']:.4f}",
             f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}"]
    for row in report["per_class"]:
        lines.append(f"{row['class'][:12]:>12} {row['precision']:9.4f} {row['recall']:7.4f} "
                     f"{row['f1']:7.4f} {row['support']:7d}")
    lines.append(f"{'macro avg':>12} {report['macro_precision']:9.4f} {report['macro_recall']:7.4f} "
                 f"{report['macro_f1']:7.4f}")
    width = max(len(str(v)) for row in report["confusion_matrix"] for v in row) + 1
    lines.append("confusion matrix (rows: true, columns: predicted):")
    lines.append(" " * 13 + "".join(f"{name[:width - 1]:>{width}}" for name in class_names))
    for name, row in zip(class_names, report["confusion_matrix"]):
        lines.append(f"{name[:12]:>12} " + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
