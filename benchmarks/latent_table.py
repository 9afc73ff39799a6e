"""Control of the latent space, measured: inversion PSNR of held-out real images and the share
of samples a class direction turns into its class, over the amount moved.

    python benchmarks/latent_table.py RUN [--images 20] [--steps 300]

RUN is an unconditional generation run on a labelled data set (e.g. MNIST). Held-out images
are the data set's test split (the run never saw them); the feature classifier is the cached
evaluation classifier of the run's data (trained once if missing). Prints two Markdown tables.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import ganforge
from ganforge.cli.directions import AMOUNTS
from ganforge.data import load_dataset
from ganforge.evaluate import feature_classifier
from ganforge.inference import load_classifier
from ganforge.inference.latent import class_directions, classifier_features, direction_curve, project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--images", type=int, default=20, help="held-out images to project")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("-n", type=int, default=2000, help="samples for the directions")
    args = parser.parse_args()

    model = ganforge.load(args.run)
    data = model.config.data
    classifier = load_classifier(feature_classifier(data))
    test = load_dataset(data, "test")
    pick = torch.randperm(len(test.images), generator=torch.Generator().manual_seed(0))[:args.images]
    rows = {}
    for name, features in (("pixels", None), ("pixels + features", classifier_features(classifier))):
        start, results = time.perf_counter(), []
        for i in pick.tolist():
            _, _, info = project(model.net, test.images[i:i + 1], steps=args.steps, features=features,
                                 feature_weight=0.1 if features else 0.0)
            results.append(info)
        rows[name] = (statistics.fmean(r["psnr_start"] for r in results),
                      statistics.fmean(r["psnr"] for r in results),
                      statistics.stdev(r["psnr"] for r in results) if len(results) > 1 else 0.0,
                      (time.perf_counter() - start) / len(results))
    print(f"Inversion of {args.images} held-out {data.name} test images ({args.steps} steps, {model.net.resolution} px):\n")
    print("| loss | PSNR of the best random start | PSNR after projection | s per image |")
    print("|---|---|---|---|")
    for name, (before, after, spread, seconds) in rows.items():
        print(f"| {name} | {before:.2f} dB | {after:.2f} ± {spread:.2f} dB | {seconds:.1f} |")

    def classify(images):
        return classifier.predict(images)

    directions, counts = class_directions(model.net, classify, args.n)
    curve = direction_curve(model.net, directions, classify, AMOUNTS, 500, seed=1)
    print(f"\nClass directions from {args.n} samples; share of 500 fresh samples of another class that the "
          f"feature classifier calls the class after moving them by each amount:\n")
    print("| class | samples of the class | " + " | ".join(f"amount {a:g}" for a in AMOUNTS) + " |")
    print("|---|---|" + "---|" * len(AMOUNTS))
    for c, shares in enumerate(curve):
        print(f"| {classifier.class_names[c]} | {int(counts[c])} | " +
              " | ".join("-" if s is None else f"{s:.2f}" for s in shares) + " |")
    means = [statistics.fmean(s[k] for s in curve if s[k] is not None) for k in range(len(AMOUNTS))]
    print("| mean | | " + " | ".join(f"{m:.2f}" for m in means) + " |")


if __name__ == "__main__":
    main()
