"""The health controller: HealthMonitor's decisions, and the trainer acting on them (roll
back to the last checkpoint, lower the learning rates on divergence, strengthen the
objective on collapse, stop after health.max_rollbacks). Runs are tiny: an 8-channel DCGAN
on the bundled digits at 16 px, logging every 2 steps."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge import checkpoint
from ganforge.config import HealthConfig
from ganforge.errors import ConfigError
from ganforge.objectives.gan import DEFAULT_POLICY, GANObjective
from ganforge.training import Trainer
from ganforge.training.health import Action, HealthMonitor

TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16, "data.resolution": 16,
        "log.every": 2, "log.progress": False, "log.tensorboard": "no",
        "log.sample_every": 1000, "log.checkpoint_every": 1000}

# Every log line counts as "D wins outright", so a collapse is declared after 4 steps.
FORCED_COLLAPSE = {"health.d_win_accuracy": 0.01, "health.d_win_steps": 4}


@pytest.fixture
def collapse_once(monkeypatch):
    """With FORCED_COLLAPSE, D wins at every log line until the first rollback and never after
    it: one collapse per run. (A collapse rolls back to before its streak, step 0 here, where
    a forced streak would begin again.)"""
    healthy_after_rollback(monkeypatch, "D_accuracy", 0.0)


def healthy_after_rollback(monkeypatch, key: str, value: float) -> None:
    """Once the monitor has rolled back, every log line's `key` reads `value`."""
    check_log, reset = HealthMonitor.check_log, HealthMonitor.reset

    def rigged(self, record, weights_finite, since_step):
        if getattr(self, "rolled_back", False) and key in record:
            record = {**record, key: value}
        return check_log(self, record, weights_finite, since_step)

    def reset_and_remember(self):
        self.rolled_back = True
        reset(self)

    monkeypatch.setattr(HealthMonitor, "check_log", rigged)
    monkeypatch.setattr(HealthMonitor, "reset", reset_and_remember)




def tiny(tmp_path: Path, steps: int, **extra) -> dict:
    return {**TINY, "train.steps": steps, "out": str(tmp_path / "r"), **extra}


def trainer(tmp_path: Path, steps: int, **extra) -> Trainer:
    return Trainer(ganforge.make_config(overrides=tiny(tmp_path, steps, **extra)))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def health_lines(run_dir: Path) -> list[dict]:
    return [r for r in metrics(run_dir) if "health" in r]


def last(run_dir: Path) -> tuple[dict, dict]:
    return checkpoint.load(Path(run_dir) / "checkpoints" / "last.safetensors")


def inject_nan_at_step(monkeypatch, step: int) -> list[int]:
    """Fill one D weight with NaN at the start of the given step's G phase (once: the
    replayed step after a rollback stays healthy). Returns the list of injections."""
    original = GANObjective.loss
    seen = {"G": 0}
    injected: list[int] = []

    def loss(self, phase, batch):
        if phase == "G":
            if seen["G"] == step and not injected:
                with torch.no_grad():
                    next(self.D.parameters()).fill_(float("nan"))
                injected.append(step)
            seen["G"] += 1
        return original(self, phase, batch)

    monkeypatch.setattr(GANObjective, "loss", loss)
    return injected


# --------------------------------------------------------------------------- HealthMonitor

def monitor(**kwargs) -> HealthMonitor:
    return HealthMonitor(HealthConfig(**kwargs))


GOOD = {"step": 10, "loss_D": 1.2, "loss_G": 0.8, "grad_norm_D": 3.0, "grad_norm_G": 2.0,
        "D_accuracy": 0.7, "images_per_s": 100.0, "elapsed_s": 1.0}


def test_a_healthy_record_needs_no_action():
    assert monitor().check_log(dict(GOOD), True, 0) is None


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("key", ["loss_D", "loss_G", "D_real"])
def test_non_finite_values_are_divergence(key, value):
    action = monitor().check_log({**GOOD, key: value}, True, 0)
    assert isinstance(action, Action) and action.kind == "divergence"
    assert key in action.reason


def test_non_finite_weights_are_divergence():
    action = monitor().check_log(dict(GOOD), False, 0)
    assert action.kind == "divergence" and "non-finite" in action.reason and "weights" in action.reason


@pytest.mark.parametrize("key", ["grad_norm_D", "grad_norm_G"])
def test_a_gradient_norm_above_the_threshold_is_divergence_naming_the_key(key):
    action = monitor(max_grad_norm=100.0).check_log({**GOOD, key: 250.0}, True, 0)
    assert action.kind == "divergence"
    assert key in action.reason and "max_grad_norm" in action.reason
    assert monitor(max_grad_norm=100.0).check_log({**GOOD, key: 99.0}, True, 0) is None


def test_d_winning_is_counted_in_steps_since_the_streak_began():
    m = monitor(d_win_accuracy=0.9, d_win_steps=10)
    winning = {**GOOD, "D_accuracy": 0.95}
    # Lines every 5 steps: the streak starts with the steps after since_step=0 ...
    assert m.check_log({**winning, "step": 5}, True, 0) is None
    # ... and is 10 steps long at step 10.
    action = m.check_log({**winning, "step": 10}, True, 5)
    assert action is not None and action.kind == "collapse"
    assert "D_accuracy" in action.reason and "10 steps" in action.reason
    # A decision starts a new streak, from the steps after it.
    assert m.check_log({**winning, "step": 15}, True, 10) is None
    assert m.check_log({**winning, "step": 20}, True, 15).kind == "collapse"


def test_the_streak_counts_steps_not_log_lines():
    m = monitor(d_win_accuracy=0.9, d_win_steps=10)
    winning = {**GOOD, "D_accuracy": 0.95}
    assert m.check_log({**winning, "step": 2}, True, 1) is None
    assert m.check_log({**winning, "step": 3}, True, 2) is None
    assert m.check_log({**winning, "step": 10}, True, 3) is None  # 9 steps since step 1
    assert m.check_log({**winning, "step": 11}, True, 10).kind == "collapse"


def test_the_streak_resets_below_the_threshold():
    m = monitor(d_win_accuracy=0.9, d_win_steps=10)
    winning, losing = {**GOOD, "D_accuracy": 0.95}, {**GOOD, "D_accuracy": 0.5}
    assert m.check_log({**winning, "step": 5}, True, 0) is None
    assert m.check_log({**losing, "step": 10}, True, 5) is None  # reset
    assert m.check_log({**winning, "step": 15}, True, 10) is None  # new streak from step 10
    assert m.check_log({**winning, "step": 19}, True, 15) is None
    assert m.check_log({**winning, "step": 20}, True, 19).kind == "collapse"


def test_reset_forgets_the_streak():
    m = monitor(d_win_accuracy=0.9, d_win_steps=10)
    winning = {**GOOD, "D_accuracy": 0.95}
    assert m.check_log({**winning, "step": 5}, True, 0) is None
    m.reset()
    assert m.check_log({**winning, "step": 10}, True, 5) is None
    assert m.check_log({**winning, "step": 15}, True, 10).kind == "collapse"


def test_records_without_d_accuracy_leave_the_streak_alone():
    m = monitor(d_win_accuracy=0.9, d_win_steps=10)
    assert m.check_log({**GOOD, "D_accuracy": 0.95, "step": 5}, True, 0) is None
    record = {k: v for k, v in GOOD.items() if k != "D_accuracy"}
    assert m.check_log({**record, "step": 8}, True, 5) is None
    assert m.check_log({**GOOD, "D_accuracy": 0.95, "step": 10}, True, 8).kind == "collapse"


def test_disabled_monitor_checks_nothing():
    m = monitor(enabled=False, max_grad_norm=1e-6, d_win_accuracy=0.01, d_win_steps=1)
    assert m.check_log({**GOOD, "loss_D": math.nan, "grad_norm_D": 1e9}, False, 0) is None
    assert m.check_eval({"classes_present": 0.0, "diversity_ratio": 0.0}) is None


def test_check_eval_few_classes_is_collapse():
    action = monitor().check_eval({"fid": 50.0, "classes_present": 0.1, "diversity_ratio": 0.9})
    assert action.kind == "collapse" and "classes_present" in action.reason
    assert "min_classes_present" in action.reason


def test_check_eval_low_diversity_is_collapse():
    action = monitor().check_eval({"fid": 50.0, "classes_present": 1.0, "diversity_ratio": 0.1})
    assert action.kind == "collapse" and "diversity_ratio" in action.reason


@pytest.mark.parametrize("scores", [{"fid": 12.0, "classes_present": 1.0, "diversity_ratio": 0.9},
                                    {"fid": 12.0, "classes_present": 0.5, "diversity_ratio": 0.3},
                                    {"fid": 12.0}])
def test_check_eval_good_scores_need_no_action(scores):
    assert monitor().check_eval(scores) is None


def test_a_flat_d_is_counted_in_steps_and_resets_above_the_margin():
    m = monitor(min_d_margin=0.1, flat_d_steps=10)
    flat, apart = {**GOOD, "D_margin": 0.05}, {**GOOD, "D_margin": 0.4}
    assert m.check_log({**flat, "step": 5}, True, 0) is None
    assert m.check_log({**apart, "step": 10}, True, 5) is None  # reset
    assert m.check_log({**flat, "step": 15}, True, 10) is None  # new streak from step 10
    assert m.streak_start() == 10
    record = {k: v for k, v in flat.items() if k != "D_margin"}
    assert m.check_log({**record, "step": 18}, True, 15) is None  # no margin: left alone
    action = m.check_log({**flat, "step": 20}, True, 18)
    assert action.kind == "flat" and action.since == 10
    assert "D_margin < 0.1" in action.reason and "10 steps" in action.reason
    assert m.streak_start() is None


def test_flat_d_steps_0_turns_the_check_off():
    m = monitor(min_d_margin=0.1, flat_d_steps=0)
    assert all(m.check_log({**GOOD, "D_margin": 0.0, "step": s}, True, s - 5) is None
               for s in range(5, 100, 5))


def test_a_healthy_margin_is_no_flat_d():
    # What healthy runs logged on real data (README "The health controller"): 0.12 and up.
    m = monitor()
    assert all(m.check_log({**GOOD, "D_margin": 0.12, "step": s}, True, s - 50) is None
               for s in range(50, 5000, 50))


@pytest.mark.parametrize("key, value", [("health.max_grad_norm", 0), ("health.lr_factor", 1.0),
                                        ("health.lr_factor", 0), ("health.d_win_accuracy", 0),
                                        ("health.d_win_accuracy", 1.5), ("health.d_win_steps", 0),
                                        ("health.max_rollbacks", -1), ("health.min_d_margin", -0.1),
                                        ("health.flat_d_steps", -1)])
def test_bad_health_settings_are_config_errors(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ganforge.make_config(overrides={key: value, "out": str(tmp_path / "c")})


# --------------------------------------------------------------------------- divergence

def test_nan_weights_roll_back_and_halve_the_learning_rates(tmp_path, monkeypatch):
    injected = inject_nan_at_step(monkeypatch, 5)  # the 6th step; checkpoint at step 4
    t = trainer(tmp_path, 10, **{"log.checkpoint_every": 4})
    run = t.run()
    assert injected == [5]
    assert run.step == 10 and run.stop_reason == "steps done"
    records = metrics(run.dir)
    assert [r["step"] for r in records] == [2, 4, 6, 4, 6, 8, 10]
    bad = records[2]
    assert math.isnan(bad["loss_G"])  # the line that was logged, then acted on
    (health,) = health_lines(run.dir)
    assert health["health"] == "divergence"
    assert "non-finite" in health["reason"] or "nan" in health["reason"]
    assert health["step"] == 4 and "rolled back from step 6 to step 4" in health["action"]
    assert "x0.5" in health["action"]
    # Training went on from the checkpoint, healthy, to the requested step.
    assert all(math.isfinite(r["loss_D"]) and math.isfinite(r["loss_G"]) for r in records[4:])
    tensors, meta = last(run.dir)
    assert meta["step"] == 10
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith(("nets.", "ema.")))
    assert t.weights_finite()
    assert meta["lr_scale"] == 0.5 and meta["rollbacks"] == 1
    for name in ("G", "D"):
        assert t.optimizers[name].param_groups[0]["lr"] == pytest.approx(0.5 * 2e-4)


def test_the_lowered_learning_rate_survives_resume(tmp_path, monkeypatch):
    inject_nan_at_step(monkeypatch, 1)
    run = ganforge.train(overrides=tiny(tmp_path, 4))
    assert last(run.dir)[1]["lr_scale"] == 0.5
    t = Trainer(ganforge.make_config(resume=run.dir, overrides={"train.steps": 6}), resume=True)
    assert t.lr_scale == 0.5 and t.rollbacks == 1
    t.run()
    assert t.optimizers["D"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert last(run.dir)[1]["lr_scale"] == 0.5


def test_lr_factor_sets_the_reduction(tmp_path, monkeypatch):
    inject_nan_at_step(monkeypatch, 1)
    t = trainer(tmp_path, 4, **{"health.lr_factor": 0.1, "train.lr_d": 1e-3})
    t.run()
    assert last(t.run_dir)[1]["lr_scale"] == pytest.approx(0.1)
    assert t.optimizers["D"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert t.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-5)


def test_exploding_gradients_stop_the_run_after_max_rollbacks(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, 10, **{"health.max_grad_norm": 1e-6,
                                                         "health.max_rollbacks": 2,
                                                         "train.time_budget": 60}))  # no endless loop
    assert "unhealthy" in run.stop_reason and "grad_norm" in run.stop_reason
    assert "2 rollbacks" in run.stop_reason
    assert run.step < 10
    lines = health_lines(run.dir)
    assert [line["health"] for line in lines] == ["divergence"] * 3
    assert all("grad_norm" in line["reason"] and "max_grad_norm" in line["reason"] for line in lines)
    assert all(line["action"].startswith("rolled back") for line in lines[:2])
    assert "x0.5" in lines[0]["action"] and "x0.25" in lines[1]["action"]
    assert lines[-1]["action"].startswith("stopped") and "max_rollbacks" in lines[-1]["action"]
    assert metrics(run.dir)[-1] == lines[-1]  # the last line of the log says it stopped
    # The unhealthy state is not saved: `last` is still the last good checkpoint.
    assert last(run.dir)[1]["step"] == 0 and last(run.dir)[1]["rollbacks"] == 0


def test_max_rollbacks_0_stops_at_the_first_problem(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, 10, **{"health.max_grad_norm": 1e-6,
                                                         "health.max_rollbacks": 0}))
    assert run.step == 2 and "unhealthy" in run.stop_reason
    (line,) = health_lines(run.dir)
    assert line["step"] == 2 and line["action"].startswith("stopped")


def test_disabled_health_checks_nothing(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, 6, **{"health.enabled": False, "health.max_grad_norm": 1e-6,
                                                        **FORCED_COLLAPSE}))
    assert run.step == 6 and run.stop_reason == "steps done"
    records = metrics(run.dir)
    assert [r["step"] for r in records] == [2, 4, 6]
    assert not any("health" in r for r in records)
    assert not any(key.startswith("grad_norm") for r in records for key in r)
    meta = last(run.dir)[1]
    assert meta["rollbacks"] == 0 and meta["lr_scale"] == 1.0


def test_enabled_health_logs_gradient_norms(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, 4))
    for record in metrics(run.dir):
        assert record["grad_norm_D"] > 0 and record["grad_norm_G"] > 0
        assert "health" not in record


# --------------------------------------------------------------------------- collapse

def one_rollback(tmp_path, forced: dict, options: dict):
    """A 6-step run whose forced streak ends at step 4 once: (trainer, run, its one health
    line, the last checkpoint's state). The streak began at the first log line, so the
    rollback goes back to the checkpoint written before it, step 0."""
    t = trainer(tmp_path, 6, **{**forced, "log.checkpoint_every": 3, **options})
    run = t.run()
    assert run.step == 6 and run.stop_reason == "steps done"
    (line,) = health_lines(run.dir)
    assert line["step"] == 0 and line["action"].startswith("rolled back from step 4 to step 0")
    return t, run, line, last(run.dir)[1]


@pytest.mark.parametrize("case", ["plain", "augment", "ada", "r1", "wgan-gp"])
def test_collapse_rolls_back_and_strengthens_the_objective(tmp_path, case, collapse_once):
    options = {"plain": {}, "augment": {"objective.augment": "translation", "objective.augment_p": 0.3},
               "ada": {"objective.ada": True, "objective.ada_speed": 10 ** 9},
               "r1": {"objective.r1_gamma": 1.0}, "wgan-gp": {"objective.loss": "wgan-gp"}}[case]
    t, run, line, state = one_rollback(tmp_path, FORCED_COLLAPSE, options)
    assert line["health"] == "collapse" and "D_accuracy" in line["reason"]
    objective = state["objective"]
    assert state["lr_scale"] == 1.0 and state["rollbacks"] == 1  # strengthened instead
    if case == "plain":
        assert objective["policy"] == DEFAULT_POLICY.split(",") and objective["p"] == pytest.approx(0.2)
        assert "switched on" in line["action"]
        # The augmentation is used (and logged) from then on.
        assert metrics(run.dir)[-1]["augment_p"] == pytest.approx(0.2)
    elif case == "augment":
        assert objective["policy"] == ["translation"] and objective["p"] == pytest.approx(0.5)
    elif case == "ada":
        assert objective["ada"]["p"] == pytest.approx(0.2, abs=1e-3)
        assert "adaptive augmentation" in line["action"]
    else:
        assert objective["reg_scale"] == 2.0 and objective["policy"] == []
        assert "regulariser" in line["action"]
    assert t.objective.state_dict() == objective


# Every log line has D's verdicts alike, so a flat D is declared after 4 steps.
FORCED_FLAT = {"health.min_d_margin": 1e6, "health.flat_d_steps": 4}


@pytest.fixture
def flat_once(monkeypatch):
    """With FORCED_FLAT, a flat D until the first rollback and never after it."""
    healthy_after_rollback(monkeypatch, "D_margin", 1e9)


def test_the_gan_objective_logs_d_margin_for_ns_and_hinge_only(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path / "ns", 4))
    for record in metrics(run.dir):  # D_real and D_fake are means in D's precision (bf16 on CPU)
        scale = max(abs(record["D_real"]), abs(record["D_fake"]))
        assert record["D_margin"] == pytest.approx(record["D_real"] - record["D_fake"], abs=0.01 * scale + 1e-5)
    for loss in ("lsgan", "wgan-gp"):  # outputs that close in as G improves; a critic's offset
        other = ganforge.train(overrides=tiny(tmp_path / loss, 4, **{"objective.loss": loss}))
        assert not any("D_margin" in record for record in metrics(other.dir))
    hinge = ganforge.train(overrides=tiny(tmp_path / "hinge", 4, **{"objective.loss": "hinge"}))
    assert all("D_margin" in record for record in metrics(hinge.dir))


@pytest.mark.parametrize("options, relaxed", [({"objective.r1_gamma": 1.0}, True),
                                              ({"objective.cr_weight": 1.0}, True),
                                              ({}, False)])
def test_a_flat_d_rolls_back_and_relaxes_the_regularisers(tmp_path, flat_once, options, relaxed):
    _, _, line, state = one_rollback(tmp_path, FORCED_FLAT, options)
    assert line["health"] == "flat" and "D_margin" in line["reason"]
    if relaxed:
        assert "regulariser weight x0.5" in line["action"]
        assert state["objective"]["reg_scale"] == 0.5 and state["lr_scale"] == 1.0
    else:  # nothing to relax: the learning rates are lowered, as after a divergence
        assert "x0.5 of the configured" in line["action"]
        assert state["objective"]["reg_scale"] == 1.0 and state["lr_scale"] == 0.5
    assert state["objective"]["policy"] == []  # a flat D switches no augmentation on


def test_the_flat_d_streak_survives_resume(tmp_path):
    settings = {**FORCED_FLAT, "health.flat_d_steps": 6, "log.checkpoint_every": 2,
                "objective.r1_gamma": 1.0}
    straight = ganforge.train(overrides=tiny(tmp_path / "a", 8, **settings))
    ganforge.train(overrides=tiny(tmp_path / "b", 4, **settings))
    resumed = ganforge.train(resume=tmp_path / "b" / "r", overrides={"train.steps": 8})
    steps = lambda run: [(line["step"], line["health"]) for line in health_lines(run.dir)]
    assert steps(straight) and steps(resumed) == steps(straight)


def test_collapse_without_anything_to_raise_lowers_the_learning_rate(tmp_path, monkeypatch, collapse_once):
    monkeypatch.setattr(GANObjective, "strengthen", lambda self, within_classes=False: None)
    run = ganforge.train(overrides=tiny(tmp_path, 6, **{**FORCED_COLLAPSE, "log.checkpoint_every": 3}))
    (line,) = health_lines(run.dir)
    assert line["health"] == "collapse" and "x0.5" in line["action"]
    assert last(run.dir)[1]["lr_scale"] == 0.5


def test_a_rollback_restores_the_checkpointed_state(tmp_path, monkeypatch, collapse_once):
    """Right after a rollback the loop holds exactly what the checkpoint rolled back to holds
    (for a collapse: `rollback`, kept when the streak began)."""
    checked = []
    original = Trainer._recover

    def recover(self, action, logger):
        failed_at = self.step
        tensors, meta = checkpoint.load(self.run_dir / "checkpoints" / "rollback.safetensors")
        result = original(self, action, logger)
        assert self.step == meta["step"] < failed_at
        for name, net in self.nets.items():
            for key, value in net.state_dict().items():
                assert torch.equal(value, tensors[f"nets.{name}.{key}"]), (name, key)
        for key, value in self.ema.shadow.state_dict().items():
            assert torch.equal(value, tensors[f"ema.G.{key}"]), key
        for name, optimizer in self.optimizers.items():
            for index, state in optimizer.state_dict()["state"].items():
                for key, value in state.items():
                    assert torch.equal(value, tensors[f"optim.{name}.state.{index}.{key}"]), (name, key)
        assert torch.equal(torch.get_rng_state(), tensors["rng.torch"])
        assert self.sampler.cursor == meta["sampler"]["cursor"]
        assert self.elapsed == meta["elapsed_s"]
        checked.append((failed_at, self.step))
        return result

    monkeypatch.setattr(Trainer, "_recover", recover)
    run = ganforge.train(overrides=tiny(tmp_path, 8, **{**FORCED_COLLAPSE, "log.checkpoint_every": 3}))
    assert checked == [(4, 0)]
    # The health line is logged at the step rolled back to, and the log goes on from there.
    records = metrics(run.dir)
    steps = [r["step"] for r in records]
    first = next(i for i, r in enumerate(records) if "health" in r)
    assert records[first]["step"] == 0 and steps[:first] == [2, 4] and steps[first + 1] == 2


def test_a_rollback_replays_the_same_batches(tmp_path, monkeypatch, collapse_once):
    """The sampler and RNG states come back: the steps after a rollback see the same data."""
    from ganforge.training.batches import EpochSampler

    drawn = []
    original = EpochSampler.next

    def next_batch(self):
        batch = original(self)
        drawn.append(batch.images.sum().item())
        return batch

    monkeypatch.setattr(EpochSampler, "next", next_batch)
    ganforge.train(overrides=tiny(tmp_path, 4, **{**FORCED_COLLAPSE, "log.checkpoint_every": 3,
                                                  "health.d_win_steps": 4}))
    # Steps 1..4 drew 4 batches; the rollback to step 0 replays all four.
    assert len(drawn) == 8 and drawn[4:] == drawn[:4]


# --------------------------------------------------------------------------- evaluation-driven health

def _fake_evaluator(scores):
    return lambda net: dict(scores)


def test_a_bad_evaluation_rolls_back_and_strengthens(tmp_path):
    # Evaluation at step 4 falls between log lines (every 3 steps) and after a checkpoint (every step).
    config = ganforge.make_config(overrides=tiny(tmp_path, 8, **{
        "log.every": 3, "log.eval_every": 4, "log.checkpoint_every": 1, "health.max_rollbacks": 1}))
    scores = iter([{"fid": 10.0, "classes_present": 0.1}] + [{"fid": 9.0, "classes_present": 1.0}] * 10)
    run = Trainer(config, evaluator=lambda net: next(scores)).run()
    assert run.step == 8 and run.stop_reason == "steps done"
    (line,) = health_lines(run.dir)
    assert line["health"] == "collapse" and "classes_present" in line["reason"]
    assert line["step"] == 3 and line["action"].startswith("rolled back from step 4 to step 3")
    assert last(run.dir)[1]["objective"]["p"] == pytest.approx(0.2)
    assert [r["step"] for r in metrics(run.dir) if "loss_D" in r] == [3, 6, 8]


def test_a_bad_evaluation_after_max_rollbacks_stops_the_run(tmp_path):
    config = ganforge.make_config(overrides=tiny(tmp_path, 8, **{"log.eval_every": 2, "health.max_rollbacks": 0}))
    run = Trainer(config, evaluator=_fake_evaluator({"fid": 1.0, "classes_present": 0.0})).run()
    assert "unhealthy" in run.stop_reason and run.step == 2


def test_a_bad_evaluation_between_log_lines_keeps_the_log_consistent(tmp_path):
    config = ganforge.make_config(overrides=tiny(tmp_path, 8, **{"log.every": 4, "log.eval_every": 4,
                                                                 "log.checkpoint_every": 3,
                                                                 "health.max_rollbacks": 1}))
    scores = iter([{"fid": 10.0, "classes_present": 0.0}] + [{"fid": 9.0, "classes_present": 1.0}] * 10)
    run = Trainer(config, evaluator=lambda net: next(scores)).run()
    assert run.step == 8 and run.stop_reason == "steps done"
    records = [r for r in metrics(run.dir) if "loss_D" in r]
    assert records[-1]["step"] == 8
    assert all(math.isfinite(r["loss_D"]) and r["images_per_s"] > 0 for r in records)


def test_the_d_wins_streak_survives_resume(tmp_path):
    """Stopped mid-streak and resumed, the run acts at the same step as an uninterrupted one."""
    settings = {"health.d_win_accuracy": 0.01, "health.d_win_steps": 6, "log.checkpoint_every": 2}
    straight = ganforge.train(overrides=tiny(tmp_path / "a", 8, **settings))
    ganforge.train(overrides=tiny(tmp_path / "b", 4, **settings))
    resumed = ganforge.train(resume=tmp_path / "b" / "r", overrides={"train.steps": 8})
    steps = lambda run: [line["step"] for line in health_lines(run.dir)]
    assert steps(straight) and steps(resumed) == steps(straight)
