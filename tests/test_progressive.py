"""ProGAN (`progressive`): the growth schedule, smooth fade-in, stage state in checkpoints,
and training runs that grow inside the run, resumed exactly across a stage switch."""
import json

import pytest
import torch

import ganforge
from helpers import assert_resume_is_exact
from ganforge import checkpoint
from ganforge.api import make_config
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import DataShape, build_models
from ganforge.models.progressive import schedule

SMALL = {"g_width": 4, "d_width": 4, "max_width": 8, "latent_dim": 16}


def nets(resolution=32, channels=1, classes=0, seed=0, **args):
    torch.manual_seed(seed)
    built = build_models(ModelConfig(name="progressive", args={**SMALL, **args}),
                         DataShape(resolution, channels, classes))
    return built["G"], built["D"]


def all_stages(net):
    """(stage, alpha) at the start, middle and end of each stage's fade-in."""
    yield 0, 1.0
    for k in range(1, len(net.stages)):
        for alpha in (0.0, 0.5, 1.0):
            yield k, alpha


def test_schedule_fades_each_new_stage_in_over_its_first_half():
    # stage_steps 4, stages 4x4, 8x8, 16x16, 32x32.
    got = [schedule(step, 4, 4) for step in range(18)]
    assert got[:4] == [(0, 1.0)] * 4                       # 4x4: stable only
    assert got[4:8] == [(1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0)]
    assert got[8:12] == [(2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]
    assert got[12:] == [(3, 0.0), (3, 0.5)] + [(3, 1.0)] * 4  # the last stage lasts for ever
    assert schedule(10**9, 4, 4) == (3, 1.0)
    assert schedule(5, 10, 3, fade_fraction=0.0) == (0, 1.0)
    assert schedule(10, 10, 3, fade_fraction=0.0) == (1, 1.0)  # no fade: switch at once
    assert schedule(13, 10, 3, fade_fraction=1.0) == (1, pytest.approx(0.3))


def test_set_step_sets_buffers_without_new_parameters():
    G, D = nets(stage_steps=10)
    for net in (G, D):
        params = [id(p) for p in net.parameters()]
        assert net.stages == [4, 8, 16, 32]
        assert (int(net.stage), float(net.alpha)) == (0, 1.0)  # fresh: 4x4
        net.set_step(23)
        assert (int(net.stage), float(net.alpha)) == (2, pytest.approx(0.6))
        assert net.current_resolution == 16
        net.set_step(10**9)
        assert (int(net.stage), float(net.alpha)) == (3, 1.0)
        assert [id(p) for p in net.parameters()] == params


def test_start_resolution_skips_the_coarse_stages():
    G, D = nets(start_resolution=8)
    assert G.stages == D.stages == [8, 16, 32]
    assert "to_rgb.4" not in dict(G.named_parameters()) and "to_rgb.8.weight" in dict(G.named_parameters())
    x = G(torch.randn(2, G.latent_dim))
    assert x.shape == (2, 1, 32, 32)
    assert torch.equal(x, x[..., ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3))
    D.set_stage(2, 1.0)
    assert D(x).shape == (2,) and int(D.stage) == 2


def test_fresh_generator_makes_4x4_images_upsampled():
    G, _ = nets()
    x = G(torch.randn(3, G.latent_dim))
    assert x.shape == (3, 1, 32, 32) and x.abs().max() <= 1
    blocks = x[..., ::8, ::8].repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert torch.equal(x, blocks)  # constant over 8x8 blocks
    assert x[..., ::8, ::8].std() > 0


def test_grown_generator_has_full_resolution_detail():
    G, _ = nets()
    G.set_step(10**9)
    x = G(torch.randn(3, G.latent_dim))
    assert x.shape == (3, 1, 32, 32) and x.abs().max() <= 1
    halves = x[..., ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert (x - halves).abs().mean() > 1e-2  # not constant over 2x2 blocks


def test_discriminator_sees_only_the_current_resolution():
    _, D = nets()
    D.eval()
    x = torch.randn(4, 1, 32, 32)
    # Fresh D (4x4): images with the same 8x8 block means get the same logits.
    pooled = torch.nn.functional.avg_pool2d(x, 8).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert torch.allclose(D(x), D(pooled), atol=1e-5)
    D.set_step(10**9)
    assert not torch.allclose(D(x), D(pooled), atol=1e-3)


@pytest.mark.parametrize("stage_steps,fade_fraction", [(8, 0.5), (3, 0.5), (5, 0.8)])
def test_fade_in_is_continuous_at_each_switch(stage_steps, fade_fraction):
    G, D = nets(stage_steps=stage_steps, fade_fraction=fade_fraction)
    z, x = torch.randn(4, G.latent_dim), torch.rand(4, 1, 32, 32) * 2 - 1

    def outputs(step):
        G.set_step(step)
        D.set_step(step)
        return G(z), D(x)

    for k in range(1, len(G.stages)):
        start = k * stage_steps
        g_before, d_before = outputs(start - 1)   # stage k-1, fully faded in
        g_after, d_after = outputs(start)         # stage k at alpha 0
        assert (int(G.stage), float(G.alpha)) == (k, 0.0)
        assert torch.allclose(g_before, g_after, atol=1e-6), k
        assert torch.allclose(d_before, d_after, atol=1e-5), k
        g_next, d_next = outputs(start + 1)       # one step into the fade: a small move only
        assert 0 < float(G.alpha) < 1
        assert not torch.equal(g_next, g_after)
        # ... and small alphas stay close to alpha 0 (the blend is linear in alpha)
        G.set_stage(k, 1e-4)
        D.set_stage(k, 1e-4)
        assert torch.allclose(G(z), g_after, atol=1e-3) and torch.allclose(D(x), d_after, atol=1e-3)


def test_every_used_parameter_learns_and_idle_ones_are_named():
    G, D = nets()
    z = torch.randn(4, G.latent_dim)
    for stage, alpha in all_stages(G):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        G.set_stage(stage, alpha)
        D.set_stage(stage, alpha)
        D(G(z)).sum().backward()
        for net in (G, D):
            idle = set(net.idle_parameters())
            for name, p in net.named_parameters():
                if name in idle:
                    assert p.grad is None, (stage, alpha, name)
                else:
                    assert p.grad is not None and p.grad.abs().sum() > 0, (stage, alpha, name)
    # Fully grown, only the coarse toRGB / fromRGB layers are idle (as in the paper).
    assert sorted(G.idle_parameters()) == sorted(f"to_rgb.{r}.{w}" for r in (4, 8, 16) for w in ("weight", "bias"))
    assert sorted(D.idle_parameters()) == sorted(f"from_rgb.{r}.{w}" for r in (4, 8, 16) for w in ("weight", "bias"))


def test_stage_survives_state_dict_and_checkpoint_files(tmp_path):
    G, D = nets(stage_steps=10)
    G.set_step(25)
    D.set_step(25)
    state = G.state_dict()
    assert int(state["stage"]) == 2 and float(state["alpha"]) == 1.0
    assert "stage" in D.state_dict() and "alpha" in D.state_dict()
    path = tmp_path / "g.safetensors"
    checkpoint.save(path, {k: v for k, v in state.items()}, {"step": 25})
    loaded, _ = checkpoint.load(path)
    fresh, _ = nets(seed=1, stage_steps=10)
    assert int(fresh.stage) == 0
    fresh.load_state_dict(loaded)
    assert (int(fresh.stage), float(fresh.alpha), fresh.current_resolution) == (2, 1.0, 16)
    z = torch.randn(2, G.latent_dim)
    assert torch.equal(fresh(z), G(z))
    # Mid-fade, too.
    G.set_step(31)
    fresh.load_state_dict(G.state_dict())
    assert (int(fresh.stage), fresh.current_resolution) == (3, 32)
    assert float(fresh.alpha) == pytest.approx(0.2)
    assert torch.equal(fresh(z), G(z))


def test_conditional_shapes_and_labels():
    G, D = nets(resolution=16, channels=3, classes=5)
    G.set_step(10**9)
    D.set_step(10**9)
    labels = torch.arange(4) % 5
    x = G(torch.randn(4, G.latent_dim), labels)
    assert x.shape == (4, 3, 16, 16) and x.abs().max() <= 1
    assert D(x, labels).shape == (4,)
    logits, classes = D(x, None, with_classes=True)
    assert logits.shape == (4,) and classes.shape == (4, 5)
    with pytest.raises(ValueError, match="labels"):
        G(torch.randn(4, G.latent_dim))
    # The label changes the image.
    z = torch.randn(1, G.latent_dim)
    assert not torch.equal(G(z, torch.tensor([0])), G(z, torch.tensor([1])))


def test_minibatch_std_lets_D_see_the_rest_of_the_batch():
    _, D = nets()
    D.set_step(10**9)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    other = x.clone()
    other[1:] = torch.rand(3, 1, 32, 32) * 2 - 1
    assert not torch.allclose(D(x)[0], D(other)[0])
    _, no_std = nets(mbstd_group=1)
    no_std.set_step(10**9)
    assert torch.allclose(no_std(x)[0], no_std(other)[0])


@pytest.mark.parametrize("key,value", [("stage_steps", 0), ("start_resolution", 6), ("start_resolution", 2),
                                       ("fade_fraction", 1.5), ("max_width", 0)])
def test_bad_options_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        nets(**{key: value})


def test_bad_resolutions_are_refused():
    with pytest.raises(ConfigError, match="data.resolution"):
        nets(resolution=28)
    with pytest.raises(ConfigError, match="model.start_resolution"):
        nets(resolution=16, start_resolution=32)


def test_paper_training_settings_are_the_defaults():
    config = make_config(overrides={"model.name": "progressive"})
    assert config.objective.args["loss"] == "wgan-gp"
    assert (config.train.lr, config.train.beta1, config.train.beta2) == (1e-3, 0.0, 0.99)
    mine = make_config(overrides={"model.name": "progressive", "objective.loss": "hinge", "train.lr": 2e-4})
    assert mine.objective.args["loss"] == "hinge" and mine.train.lr == 2e-4


TINY = {"model.name": "progressive", "model.g_width": 4, "model.d_width": 4, "model.max_width": 8,
        "model.latent_dim": 16, "model.stage_steps": 2, "data.resolution": 16, "train.batch_size": 8,
        "log.every": 1, "log.sample_every": 1000, "log.checkpoint_every": 1000, "log.progress": False,
        "log.tensorboard": "no"}


@pytest.mark.parametrize("loss", ["wgan-gp", "ns", "hinge"])
def test_training_grows_inside_the_run(tmp_path, loss):
    run = ganforge.train(overrides={**TINY, "objective.loss": loss, "train.steps": 6, "out": str(tmp_path / loss)})
    assert run.step == 6
    records = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(torch.tensor(r["loss_D"])) and torch.isfinite(torch.tensor(r["loss_G"]))
               for r in records)
    model = run.load()
    assert (int(model.net.stage), model.net.current_resolution) == (2, 16)  # grown: 4, 8, 16
    images = model.sample(5, seed=0)
    assert images.shape == (5, 16, 16, 1)
    tensors, _ = checkpoint.load(run.dir / "checkpoints" / "last.safetensors")
    assert int(tensors["nets.D.stage"]) == 2 and int(tensors["ema.G.stage"]) == 2


def test_resume_across_a_stage_switch_is_exact(tmp_path):
    # stage_steps 2: steps 0-1 at 4x4, 2-3 at 8x8 (fading at 2), 4-5 at 16x16 (fading at 4).
    tensors = assert_resume_is_exact(tmp_path, TINY, steps=6, split=3)
    assert int(tensors["nets.G.stage"]) == 2


@pytest.mark.parametrize("extra", [{"model.conditional": True},
                                   {"model.conditional": True, "objective.acgan_weight": 1.0}])
def test_conditional_training_grows(tmp_path, extra):
    run = ganforge.train(overrides={**TINY, **extra, "objective.loss": "hinge", "train.steps": 5,
                                    "out": str(tmp_path / "c")})
    model = run.load()
    assert model.num_classes == 10 and model.net.current_resolution == 16
    assert model.sample(4, seed=0, labels=[0, 1, 2, 3]).shape == (4, 16, 16, 1)
