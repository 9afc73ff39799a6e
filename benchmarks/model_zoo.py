"""Model zoo: each architecture trains on the bundled digits (32x32) for the same time budget
with its own default settings (`ganforge models`; the objective and optimiser defaults each
family registers), evaluated every 200 steps in the run and by `ganforge evaluate` at the end.
Prints the README's zoo table with the command of each row.

    python benchmarks/model_zoo.py --budget 120 --out runs/zoo
"""
from __future__ import annotations

from budget_table import parse_args, run_rows

EVAL = ["--eval-every", "200"]
ROWS = [
    ("dcgan (ns)", [*EVAL]),
    ("dcgan, conditional + DiffAugment", [*EVAL, "--set", "model.conditional=true",
                                          "--set", "objective.augment=translation,cutout"]),
    ("mlp (ns)", [*EVAL, "--model", "mlp"]),
    ("resnet (SNGAN: hinge, 5 D steps)", [*EVAL, "--model", "resnet"]),
    ("resnet, conditional BN + projection", [*EVAL, "--model", "resnet", "--set", "model.conditional=true"]),
    ("progressive (wgan-gp, 4x4 -> 32x32)", [*EVAL, "--model", "progressive"]),
    ("stylegan (ns, lazy R1)", [*EVAL, "--model", "stylegan"]),
    ("vae", [*EVAL, "--model", "vae"]),
]
COLUMNS = ["fid", "kid", "precision", "recall", "coverage", "classes_present"]

if __name__ == "__main__":
    run_rows(ROWS, parse_args(__doc__, 120.0, "runs/zoo"), COLUMNS)
