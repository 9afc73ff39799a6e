"""Model zoo: each architecture trains on the bundled digits (32x32) for the same time budget
with its own default settings (`ganforge models`; the objective and optimiser defaults each
family registers), evaluated every 200 steps in the run and by `ganforge evaluate` at the end.
Prints the README's zoo table with the command of each row.

    python benchmarks/model_zoo.py --budget 120 --out runs/zoo
"""
from __future__ import annotations

from budget_table import parse_args, run_rows

EVAL = ["--eval-every", "200"]
# resnet and stylegan at their default widths manage only ~50-100 steps in 2 minutes of two
# CPU cores; the zoo runs them at a quarter of the width so that each row gets a few hundred.
SMALL_RESNET = ["--set", "model.g_width=16", "--set", "model.d_width=16"]
SMALL_STYLEGAN = ["--set", "model.g_width=16", "--set", "model.d_width=16", "--set", "model.max_width=128"]
ROWS = [
    ("dcgan (ns)", [*EVAL]),
    ("dcgan, conditional + DiffAugment", [*EVAL, "--set", "model.conditional=true",
                                          "--set", "objective.augment=translation,cutout"]),
    ("mlp (ns)", [*EVAL, "--model", "mlp"]),
    ("resnet, widths 16 (SNGAN: hinge, 5 D steps)", [*EVAL, "--model", "resnet", *SMALL_RESNET]),
    ("resnet, widths 16, conditional BN + projection", [*EVAL, "--model", "resnet", *SMALL_RESNET,
                                                        "--set", "model.conditional=true"]),
    ("progressive (wgan-gp + drift, 4x4 -> 32x32 by step 875)", [*EVAL, "--model", "progressive"]),
    ("stylegan, widths 16 (ns, lazy R1)", [*EVAL, "--model", "stylegan", *SMALL_STYLEGAN]),
    ("vae", [*EVAL, "--model", "vae"]),
]
COLUMNS = ["fid", "kid", "precision", "recall", "coverage", "classes_present"]

if __name__ == "__main__":
    run_rows(ROWS, parse_args(__doc__, 120.0, "runs/zoo"), COLUMNS)
