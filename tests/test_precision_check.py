"""benchmarks/precision_check.py: the arms, the seeds, the paired interval, reuse of finished runs."""
import json
from pathlib import Path

import pytest

from helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "precision_check.py"


@pytest.fixture(scope="module")
def check():
    return load_benchmark(SCRIPT)


def test_seeds_and_arms_parse(check):
    assert check.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    args = check.parse_args(["--arms", "fp32,bf16", "--arm", "cl:train.channels_last=no,train.compile=no"])
    assert check.parse_arms(args) == [("fp32", ["train.precision=fp32"]), ("bf16", ["train.precision=bf16"]),
                                      ("cl", ["train.channels_last=no", "train.compile=no"])]
    with pytest.raises(SystemExit, match="NAME:KEY=VALUE"):
        check.parse_arms(check.parse_args(["--arm", "no-keys"]))


def test_interval_is_the_paired_t_interval(check):
    mean, low, high = check.interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2 df) = 4.303: 2 -+ 4.303 / sqrt(3)
    assert mean == 2.0 and low == pytest.approx(2 - 2.4843, abs=1e-3) and high == pytest.approx(2 + 2.4843, abs=1e-3)
    assert check.interval([0.5])[1:] == (float("-inf"), float("inf"))


def test_runs_every_arm_and_seed_then_reuses_them(check, tmp_path, capsys):
    argv = ["--arms", "fp32,bf16", "--seeds", "0", "--steps", "2", "--out", str(tmp_path / "check"),
            "--set", "data.resolution=16", "--set", "model.g_width=8", "--set", "model.d_width=8",
            "--set", "train.batch_size=16"]
    fids = check.main(argv)
    assert set(fids) == {"fp32", "bf16"} and all(v[0] > 0 for v in fids.values())
    for arm in ("fp32", "bf16"):
        report = json.loads((tmp_path / "check" / f"{arm}-s0" / "eval.json").read_text())
        assert report["setup"]["step"] == 2 and report["model"]["fid"] == fids[arm][0]
    assert "| bf16 |" in capsys.readouterr().out
    assert check.main(argv) == fids                   # the second time nothing is trained
    assert capsys.readouterr().out.count('"reused": true') == 2
    with pytest.raises(SystemExit, match="trained with other settings"):
        check.main([*argv, "--set", "train.lr=0.001"])   # not the same runs: refused, not reused
