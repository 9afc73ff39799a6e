"""`ganforge directions RUN`: a direction per class in an unconditional generator's latent
space (difference of class means, classes from the feature classifier), and the share of
samples that each direction turns into its class, over the amount moved."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options

AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="class directions in an unconditional generator's latent space",
        description="Sample -n images, classify them with the feature classifier, and take per class "
                    "the unit vector from the mean code of the other samples to the mean code of the "
                    "class (in w for stylegan, in z otherwise). Writes RUN/directions.safetensors and "
                    "prints, per class, the share of other-class samples classified as the class "
                    "after moving them by each amount.")
    parser.add_argument("run", metavar="RUN", help="run directory of an unconditional generation run")
    parser.add_argument("-n", type=int, default=2000, help="samples to compute directions from [2000]")
    parser.add_argument("--test-n", type=int, default=500, help="fresh samples the curve is measured on [500]")
    parser.add_argument("--classifier", default="auto", metavar="RUN|auto",
                        help="a classify run, or the cached evaluation classifier (auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite RUN/directions.safetensors")
    parser.add_argument("--checkpoint", default="last")
    parser.add_argument("--device", default="cpu", type=options.device)


def run(args: argparse.Namespace) -> int:
    import json

    import torch
    from safetensors.torch import save_file

    from .. import atomic
    from ..errors import ConfigError
    from ..inference import load_classifier
    from ..inference.latent import class_directions, direction_curve
    from ..inference import require_new as refuse_existing
    from .generation import generation_model

    if args.n < 2 or args.test_n < 1:
        raise ConfigError("-n must be at least 2 and --test-n at least 1")
    model = generation_model(args.run, args.checkpoint, args.device)
    path = Path(args.run) / "directions.safetensors"
    refuse_existing(path, args.force)
    if args.classifier == "auto":
        from ..evaluate import feature_classifier
        args.classifier = feature_classifier(model.config.data)
    classifier = load_classifier(args.classifier, device=args.device)
    names = classifier.class_names

    def classify(images: torch.Tensor) -> torch.Tensor:
        return classifier.predict(images)

    directions, counts = class_directions(model.net, classify, args.n, args.seed)
    curve = direction_curve(model.net, directions, classify, AMOUNTS, args.test_n, args.seed + 1)
    header = {"format": "ganforge-directions", "classes": names[:len(directions)],
              "counts": counts.tolist(), "curve": {"amounts": list(AMOUNTS), "share": curve}}
    with atomic.replacing(path) as tmp:
        save_file({"directions": directions.contiguous()}, str(tmp),
                  metadata={"ganforge": json.dumps(header)})
    print("class | samples | share turned into the class at amount " + " / ".join(f"{a:g}" for a in AMOUNTS))
    for c, shares in enumerate(curve):
        name = names[c] if c < len(names) else str(c)
        print(f"{name} | {int(counts[c])} | " + " / ".join("-" if s is None else f"{s:.2f}" for s in shares))
    print(f"wrote {path}")
    return 0
