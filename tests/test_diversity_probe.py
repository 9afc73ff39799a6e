"""The in-training per-class diversity probe (training/diversity.py) and the health
controller acting on it: a generator that draws one image per class is caught while it
trains, the run rolls back and strengthens its defences, and says so in metrics.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.config import DataConfig, HealthConfig
from ganforge.data import load_dataset
from ganforge.data.imageset import to_float
from ganforge.training.diversity import ClassDiversityProbe
from ganforge.training.health import HealthMonitor

DIGITS16 = DataConfig(name="digits", resolution=16)
TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16, "data.resolution": 16,
        "log.every": 2, "log.progress": False, "log.tensorboard": "no",
        "log.sample_every": 1000, "log.checkpoint_every": 1000}


class FromPools(torch.nn.Module):
    """A stand-in generator: for class c (or for any z when unconditional), the next image
    of a pool, in turn. Pools of one image per class are a generator collapsed in each class."""

    def __init__(self, pools: dict[int, torch.Tensor], conditional: bool = True):
        super().__init__()
        self.pools = {c: to_float(images) for c, images in pools.items()}
        self.seen = dict.fromkeys(pools, 0)
        self.num_classes = len(pools) if conditional else 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, labels=None):
        labels = labels.tolist() if labels is not None else [i % len(self.pools) for i in range(len(z))]
        out = []
        for label in labels:
            pool = self.pools[label]
            out.append(pool[self.seen[label] % len(pool)])
            self.seen[label] += 1
        return torch.stack(out)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DIGITS16, "train"), load_dataset(DIGITS16, "test")


def pools(data, per_class=None):
    return {c: data.images[data.labels == c][:per_class] for c in range(10)}


def test_real_images_of_each_class_score_about_one(digits):
    train, test = digits
    scores = ClassDiversityProbe(train, 10, latent_dim=4, per_class=16)(FromPools(pools(test)))
    assert 0.6 < scores["class_diversity_min"] <= scores["class_diversity_mean"] < 1.4


def test_one_image_per_class_scores_zero_however_good_each_image_is(digits):
    train, test = digits
    scores = ClassDiversityProbe(train, 10, latent_dim=4)(FromPools(pools(test, per_class=1)))
    assert scores["class_diversity_mean"] < 0.01


def test_one_collapsed_class_sets_the_minimum(digits):
    train, test = digits
    mixed = {**pools(test), 3: pools(test, per_class=1)[3]}
    scores = ClassDiversityProbe(train, 10, latent_dim=4, per_class=16)(FromPools(mixed))
    assert scores["class_diversity_min"] < 0.01 and scores["class_diversity_mean"] > 0.5


def test_unconditional_models_are_probed_as_one_class(digits):
    train, test = digits
    varied = ClassDiversityProbe(train, 0, latent_dim=4, per_class=40)(FromPools(pools(test), False))
    alike = ClassDiversityProbe(train, 0, latent_dim=4, per_class=40)(
        FromPools({0: test.images[:1]}, False))
    assert varied["class_diversity_min"] > 0.6 and alike["class_diversity_min"] < 0.01


def test_the_probe_restores_the_network_mode_and_draws_fixed_noise(digits):
    train, _ = digits
    probe = ClassDiversityProbe(train, 10, latent_dim=4, seed=3)
    net = torch.nn.Linear(1, 1).train()
    net.num_classes = 10
    seen = []
    net.forward = lambda z, labels: seen.append((z.clone(), net.training)) or torch.rand(len(z), 1, 16, 16)
    probe(net), probe(net)
    assert net.training and not seen[0][1]
    assert torch.equal(seen[0][0], seen[1][0])
    assert torch.equal(probe.z, ClassDiversityProbe(train, 10, latent_dim=4, seed=3).z)


# The health controller's streak.
def record(step, diversity=None):
    line = {"step": step, "loss_D": 1.0}
    if diversity is not None:
        line["class_diversity_min"] = diversity
    return line


def test_low_diversity_at_several_probes_in_a_row_is_collapse_since_the_first():
    health = HealthMonitor(HealthConfig(low_diversity_probes=3, min_class_diversity=0.4))
    assert health.check_log(record(500, 0.1), True, 450) is None
    assert health.streak_start() == 450
    assert health.check_log(record(550), True, 500) is None  # a line without a probe changes nothing
    assert health.check_log(record(1000, 0.2), True, 950) is None
    action = health.check_log(record(1500, 0.05), True, 1450)
    assert action.kind == "collapse" and action.since == 450
    assert "class_diversity_min=0.05" in action.reason and "health.min_class_diversity=0.4" in action.reason
    assert health.streak_start() is None


def test_one_good_probe_ends_the_streak_and_state_survives():
    health = HealthMonitor(HealthConfig(low_diversity_probes=2))
    health.check_log(record(500, 0.1), True, 450)
    restored = HealthMonitor(HealthConfig(low_diversity_probes=2))
    restored.load_state_dict(json.loads(json.dumps(health.state_dict())))
    assert restored.check_log(record(1000, 0.1), True, 950).since == 450
    health.check_log(record(1000, 0.9), True, 950)
    assert health.streak_start() is None and health.check_log(record(1500, 0.1), True, 1450) is None


def test_bad_probe_settings_are_config_errors(tmp_path):
    for key, value in (("health.min_class_diversity", -0.5), ("health.low_diversity_probes", 0),
                       ("health.diversity_every", -1)):
        with pytest.raises(ganforge.errors.ConfigError, match=key):
            ganforge.make_config(overrides={key: value, "out": str(tmp_path / "r")})


# In the loop.
def lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_a_conditional_run_logs_the_probe_and_acts_on_a_collapse(tmp_path):
    # Demanding far more diversity than real images have forces the collapse path.
    run = ganforge.train(overrides={**TINY, "model.conditional": True, "train.steps": 8,
                                    "health.diversity_every": 2, "health.min_class_diversity": 100.0,
                                    "health.low_diversity_probes": 2, "health.max_rollbacks": 1,
                                    "out": str(tmp_path / "r")})
    records = lines(run.dir)
    probed = [r["step"] for r in records if "class_diversity_min" in r]
    assert probed[:2] == [2, 4]
    health = [r for r in records if "health" in r]
    assert health and health[0]["health"] == "collapse" and "class_diversity_min" in health[0]["reason"]
    # A conditional model starts with mode seeking at 0.25; the controller doubles it.
    assert "mode-seeking weight raised to 0.5" in health[0]["action"]
    assert json.loads(json.dumps(health[0]))["step"] == 0  # back to before the first low probe


def test_probes_follow_their_interval_and_can_be_switched_off(tmp_path):
    every = ganforge.train(overrides={**TINY, "train.steps": 8, "log.every": 3,
                                      "health.diversity_every": 4, "out": str(tmp_path / "a")})
    assert [r["step"] for r in lines(every.dir) if "class_diversity_min" in r] == [6, 8]
    off = ganforge.train(overrides={**TINY, "train.steps": 4, "health.diversity_every": 0,
                                    "out": str(tmp_path / "b")})
    assert not any("class_diversity_min" in r for r in lines(off.dir))
