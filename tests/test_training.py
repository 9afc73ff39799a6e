"""The training loop: exact resume, checkpoint format and atomicity, EMA, stopping."""
import io
import json
import sys

import pytest
import torch

import ganforge
from ganforge import checkpoint
from ganforge.errors import CheckpointError, ConfigError
from ganforge.training.ema import EMA
from helpers import assert_resume_is_exact

TINY = {"train.batch_size": 16, "log.every": 2,
        "log.sample_every": 3, "log.checkpoint_every": 3, "log.progress": False,
        "log.tensorboard": "no", "data.resolution": 16}


SMALL_NETS = {"dcgan": {"model.g_width": 8, "model.d_width": 8}, "mlp": {"model.hidden": 32}}


def tiny(tmp_path, name, **extra):
    model = extra.pop("model.name", "dcgan")
    return {"model.name": model, **SMALL_NETS[model], **TINY, "out": str(tmp_path / name), **extra}


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_resume_gives_identical_weights(tmp_path, model):
    assert_resume_is_exact(tmp_path, tiny(tmp_path, "unused", **{"model.name": model}), steps=8, split=4)
    # The resumed run's log has each step once.
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]


def test_resume_drops_log_lines_after_the_checkpoint(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, "r", **{"train.steps": 3}))
    with open(run.dir / "metrics.jsonl", "a") as handle:  # a crash after logging step 4
        handle.write(json.dumps({"step": 4, "loss_D": 1.0}) + "\n" + '{"step": 5, "lo')
    ganforge.train(resume=run.dir, overrides={"train.steps": 4})
    steps = [json.loads(line)["step"] for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4]


def test_resume_refuses_a_changed_model(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, "r", **{"train.steps": 2}))
    with pytest.raises(ganforge.ConfigError, match="model"):
        ganforge.train(resume=run.dir, overrides={"model.g_width": 16, "train.steps": 4})


def test_resume_of_a_missing_run_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        ganforge.train(resume=tmp_path / "nowhere")


def test_checkpoint_round_trip_and_header(tmp_path):
    state = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))]).state_dict()
    state["state"][0] = {"step": torch.tensor(5.0), "exp_avg": torch.arange(3.0)}
    tensors = {"w": torch.randn(2, 3)}
    skeleton = checkpoint.flatten("optim", state, tensors)
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, tensors, {"step": 7, "optim": skeleton})
    loaded, meta = checkpoint.load(path)
    assert meta["step"] == 7 and meta["format"] == checkpoint.FORMAT
    restored = checkpoint.unflatten(meta["optim"], loaded)
    assert list(restored["state"]) == [0]  # integer keys survive JSON
    assert torch.equal(restored["state"][0]["exp_avg"], torch.arange(3.0))
    assert restored["param_groups"][0]["lr"] == state["param_groups"][0]["lr"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, {"w": torch.zeros(2)}, {"step": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError):
        checkpoint.save(path, {"w": torch.ones(2)}, {"step": 2})
    assert checkpoint.read_meta(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x10\x00\x00\x00\x00\x00\x00\x00{}"])
def test_damaged_checkpoints_are_reported_by_name(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        checkpoint.load(path)


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, {"w": torch.randn(100, 100)}, {"step": 1})
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="c.safetensors"):
        checkpoint.load(path)


def test_ema_warms_up_then_tracks_slowly():
    net = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(net, decay=0.99)
    with torch.no_grad():
        net.weight.fill_(1.0)
        ema.shadow.weight.fill_(0.0)
    ema.update(net, step=0)  # decay min(0.99, 1/10) = 0.1 -> moves 90 % of the way
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 0.9))
    ema.update(net, step=10_000)  # decay 0.99 -> moves 1 % of the rest
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 0.901))
    assert not ema.shadow.weight.requires_grad


def test_time_budget_stops_cleanly(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, "r", **{"train.steps": 100000, "train.time_budget": 0.5}))
    assert 0 < run.step < 100000 and "time budget" in run.stop_reason
    assert checkpoint.read_meta(run.dir / "checkpoints" / "last.safetensors")["step"] == run.step
    assert (run.dir / "samples" / "final.png").is_file()


def test_a_resumed_budget_run_spends_what_is_left_of_its_budget(tmp_path):
    # The budget is the run's training time over all its starts, as train.steps is its steps:
    # a run stopped early and resumed ends about where one uninterrupted run would.
    first = ganforge.train(overrides=tiny(tmp_path, "r", **{"train.steps": 100000, "train.time_budget": 1.0}))
    assert first.elapsed_s >= 1.0 and "time budget" in first.stop_reason
    with pytest.raises(ConfigError) as spent:
        ganforge.train(resume=first.dir)
    assert "train.time_budget=1" in str(spent.value) and "larger --time-budget" in str(spent.value)
    more = ganforge.train(resume=first.dir, overrides={"train.time_budget": first.elapsed_s + 0.5})
    assert more.step > first.step and "time budget" in more.stop_reason
    # Half a second more, not a fresh budget of first.elapsed_s + 0.5 on top of first.elapsed_s.
    assert first.elapsed_s + 0.5 <= more.elapsed_s < 2 * first.elapsed_s + 0.5
    status = json.loads((first.dir / "status.json").read_text())
    assert status["elapsed_s"] == pytest.approx(more.elapsed_s, abs=1e-3)


def test_losses_move_and_samples_are_finite(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, "r", **{"train.steps": 6}))
    records = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        for key in ("loss_D", "loss_G", "images_per_s", "elapsed_s"):
            assert record[key] == record[key] and record[key] >= 0  # finite, not NaN
    images = run.load().sample(8, seed=3)
    assert images.shape == (8, 16, 16, 1) and images.dtype.name == "uint8"
    assert images.std() > 0


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_budget_bound_run_shows_a_bar_over_its_seconds(tmp_path, monkeypatch):
    """No step total to estimate from: the bar counts the budget's seconds and says how
    long is left; a run with a step total counts steps."""
    from ganforge.config import LogConfig
    from ganforge.training.logger import Logger

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logger = Logger(tmp_path, LogConfig(tensorboard="no"), 10**12, 0, budget_s=60)
    logger.advance(seconds=15.0)
    logger.advance(seconds=30.0)
    assert logger.bar.n == 30 and logger.bar.total == 60
    logger.bar.refresh()
    assert "step 2" in terminal.getvalue() and "/60 s" in terminal.getvalue()
    logger.advance(seconds=75.0)                      # the last step may run past the budget
    assert logger.bar.n == 60
    logger.close()
    (tmp_path / "b").mkdir()
    counted = Logger(tmp_path / "b", LogConfig(tensorboard="no"), 100, 10, budget_s=60)
    counted.advance(seconds=1.0)
    assert counted.bar.n == 11 and counted.bar.total == 100
    counted.close()


def test_a_silent_rank_logger_advances_too(tmp_path):
    """Every rank but one logs nothing; it still counts steps without a bar or a file."""
    from ganforge.config import LogConfig
    from ganforge.training.logger import Logger

    logger = Logger(tmp_path, LogConfig(tensorboard="no"), 10**12, 3, enabled=False, budget_s=60)
    logger.advance(seconds=1.0)
    assert logger.step == 4 and logger.bar is None and not (tmp_path / "metrics.jsonl").exists()
    logger.close()
