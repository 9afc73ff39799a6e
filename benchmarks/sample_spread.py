"""How spread out a run's samples are within each class, against real images: why a loose
model's recall can reach the real-data floor at low precision.

    python benchmarks/sample_spread.py runs/bq/mnist-900s-reference-seed0 runs/bq/mnist-900s-conditional-seed0

Every sample (conditional models: labels in the real class proportions, as `ganforge
evaluate` draws them) is given the class the feature classifier predicts for it, then per
class the mean pairwise feature distance of its samples over that of the real images of the
class (above 1: more spread out than real), recall and coverage, and the share of samples
whose predicted class has probability below 0.9 (images between classes), beside the same
share of the held-out real images. Scored in the 32-pixel space by default (`--space`), as
the budget table is; `--truncation PSI` draws them at that psi (above 1: a wider latent).
"""
from __future__ import annotations

import argparse
import sys

from ganforge import load
from ganforge.data.imageset import conform
from ganforge.evaluate import Evaluator, build_extractor, scoring_space
from ganforge.models.truncation import check_truncation

UNSURE = 0.9   # a predicted class probability below this counts as "between classes"


def spread(run: str, space_px: int, truncation: float | None = None) -> dict:
    """Per-class spread, recall and coverage of `run`'s samples grouped by predicted class."""
    model = load(run, "last", "cpu")
    space = scoring_space(model.config.data, space_px or None)
    evaluator = Evaluator(space, build_extractor(space, quiet=True))
    images, _ = evaluator.sample(model.net, truncation=truncation)
    images = conform(images, space.resolution, space.channels)
    _, probs = evaluator.extractor.features_and_probs(images)
    scores = evaluator.score_samples(images, probs.argmax(1), len(evaluator.class_names))
    _, held_probs = evaluator.extractor.features_and_probs(evaluator.heldout.images)
    return {"run": run, "precision": scores["precision"], "recall": scores["recall"],
            "spread": scores["per_class_diversity"], "class_recall": scores["per_class_recall"],
            "unsure": float((probs.max(1).values < UNSURE).float().mean()),
            "real_unsure": float((held_probs.max(1).values < UNSURE).float().mean())}


def _row(values: list) -> str:
    return " ".join("-" if v is None else f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of generators")
    parser.add_argument("--space", type=int, default=32, help="feature space's resolution (0: the run's own)")
    parser.add_argument("--truncation", type=float, default=None, metavar="PSI",
                        help="draw the samples at this psi (above 1: a wider latent)")
    args = parser.parse_args(argv)
    if args.truncation is not None:
        check_truncation(args.truncation)
    for run in args.runs:
        s = spread(run, args.space, args.truncation)
        known = [v for v in s["spread"] if v is not None]
        print(f"{run}\n  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
              f"spread per class over real {min(known):.2f}-{max(known):.2f}  "
              f"unsure (p < {UNSURE}) {s['unsure']:.3f} (real {s['real_unsure']:.3f})\n"
              f"  spread       {_row(s['spread'])}\n  class recall {_row(s['class_recall'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
