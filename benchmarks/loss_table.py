"""Loss x regulariser table: each row trains the default DCGAN on the digits for the same
time budget, then `ganforge evaluate` scores its last checkpoint. Prints a Markdown table
(the one in the README) with the command of each row.

    python benchmarks/loss_table.py --budget 60 --out runs/loss-table
"""
from __future__ import annotations

from budget_table import parse_args, run_rows

ROWS = [
    ("ns", []),
    ("lsgan", ["--set", "objective.loss=lsgan"]),
    ("hinge + spectral norm", ["--set", "objective.loss=hinge", "--set", "objective.spectral_norm=true"]),
    ("wgan (clipping), 5 D steps", ["--set", "objective.loss=wgan", "--d-steps", "5", "--lr", "5e-5",
                                    "--set", "train.beta1=0.0"]),
    ("wgan-gp, 5 D steps, no BN in D", ["--set", "objective.loss=wgan-gp", "--d-steps", "5",
                                        "--set", "model.d_batchnorm=false", "--lr", "1e-4",
                                        "--set", "train.beta1=0.0", "--set", "train.beta2=0.9"]),
    ("ns + lazy R1 (gamma 1, every 4)", ["--set", "objective.r1_gamma=1", "--set", "objective.r1_every=4"]),
    ("ns + label smoothing 0.1", ["--set", "objective.label_smoothing=0.1"]),
    ("ns + DiffAugment (translation, cutout)", ["--set", "objective.augment=translation,cutout"]),
    ("ns + ADA", ["--set", "objective.ada=true"]),
    ("hinge + TTUR (lr_d 4e-4, lr_g 1e-4)", ["--set", "objective.loss=hinge", "--set", "train.lr_d=4e-4",
                                             "--set", "train.lr_g=1e-4"]),
    ("conditional ns (projection D)", ["--set", "model.conditional=true"]),
    ("conditional ns + ACGAN", ["--set", "model.conditional=true", "--set", "objective.acgan_weight=1"]),
    ("conditional ns + DiffAugment (translation, cutout)", ["--set", "model.conditional=true", "--set",
                                                           "objective.augment=translation,cutout"]),
]
COLUMNS = ["fid", "kid", "precision", "recall", "coverage", "classes_present", "sample_accuracy"]

if __name__ == "__main__":
    run_rows(ROWS, parse_args(__doc__, 60.0, "runs/loss-table"), COLUMNS)
