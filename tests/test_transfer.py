"""Transfer learning: --init-from copies another run's networks and EMA (and nothing else),
refuses what cannot transfer by name, train.freeze keeps parts fixed through every phase,
and data.classes / data.limit choose the small target sets."""
import json
import shutil

import pytest
import torch

import ganforge
from ganforge import checkpoint
from ganforge.cli import main
from ganforge.config import DataConfig, ModelConfig, parse_freeze
from ganforge.data import load_dataset
from ganforge.data.subset import balanced_order
from ganforge.errors import CheckpointError, ConfigError, DataError
from ganforge.models import DataShape, build_models
from ganforge.training import Trainer
from ganforge.training.transfer import blocks, freeze, source_checkpoint
from helpers import error_line

TINY = {"model.g_width": 8, "model.d_width": 8, "data.resolution": 16, "train.batch_size": 8,
        "log.every": 2, "log.sample_every": 100, "log.checkpoint_every": 100, "log.grid_size": 4,
        "log.progress": False, "log.tensorboard": "no", "train.precision": "fp32",
        # A few steps' D tells little apart: a flat-D streak would keep a rollback checkpoint
        # beside `last`, which the listings below name.
        "health.flat_d_steps": 0}
STYLEGAN = {"model.name": "stylegan", "model.latent_dim": 8, "model.w_dim": 8, "model.mapping_layers": 2,
            "model.g_width": 4, "model.d_width": 4, "model.max_width": 8, "objective.r1_every": 2}


def run(tmp_path, name, **extra):
    return ganforge.train(overrides={**TINY, "out": str(tmp_path / name), **extra})


def last(run_dir, name="last"):
    return checkpoint.load(run_dir / "checkpoints" / f"{name}.safetensors")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny conditional DCGAN trained 3 steps on digits 0-2 (with EMA)."""
    folder = tmp_path_factory.mktemp("source")
    ganforge.train(overrides={**TINY, "train.steps": 3, "data.classes": [0, 1, 2],
                              "model.conditional": True, "out": str(folder / "run")})
    return folder / "run"


# --init-from: what is loaded.
def test_init_from_loads_the_sources_networks_and_ema_and_nothing_else(tmp_path, source):
    target = run(tmp_path, "t", **{"train.steps": 0, "data.classes": [3, 4, 5], "model.conditional": True,
                                   "train.init_from": str(source), "train.seed": 7})
    theirs, their_meta = last(source)
    mine, meta = last(target.dir)
    assert meta["step"] == 0
    weights = [k for k in theirs if k.startswith(("nets.", "ema."))]
    assert weights and any(k.startswith("ema.G.") for k in weights)
    for key in weights:
        assert torch.equal(mine[key], theirs[key]), key
    # Optimisers start fresh: no Adam moments at step 0, while the source has them.
    assert any(k.startswith("optim.D.state") for k in theirs)
    assert not any(k.startswith(("optim.D.state", "optim.G.state")) for k in mine)
    report = json.loads((target.dir / "init_from.json").read_text())
    assert report["source_step"] == their_meta["step"] == 3 and report["checkpoint"] == "last"
    assert sum(report["loaded"].values()) == len(weights) and report["reinitialised"] == []
    assert ganforge.make_config(resume=target.dir).train.init_from == str(source)


def test_a_new_number_of_classes_reinitialises_the_class_tensors_only(tmp_path, source):
    target = run(tmp_path, "t", **{"train.steps": 0, "data.classes": [5, 6], "model.conditional": True,
                                   "train.init_from": f"{source}:last"})
    fresh = run(tmp_path, "fresh", **{"train.steps": 0, "data.classes": [5, 6], "model.conditional": True})
    theirs, mine, new = last(source)[0], last(target.dir)[0], last(fresh.dir)[0]
    report = json.loads((target.dir / "init_from.json").read_text())
    resized = {item["tensor"] for item in report["reinitialised"]}
    assert {"nets.G.condition.embed.weight", "nets.D.project.embed.weight",
            "ema.G.condition.embed.weight"} <= resized
    for key in (k for k in theirs if k.startswith(("nets.", "ema."))):
        if key in resized:
            assert mine[key].shape[0] == 2 and torch.equal(mine[key], new[key]), key  # this run's own init
        else:
            assert torch.equal(mine[key], theirs[key]), key
    assert any("re-initialised" in line and "3 classes there, 2 here" in line for line in report["lines"])


@pytest.mark.parametrize("change, message", [
    ({"data.resolution": 32}, r"data\.resolution=16, this run has data\.resolution=32"),
    ({"data.channels": 3}, r"data\.channels=1, this run has data\.channels=3"),
    ({"model.name": "mlp", "model.hidden": 8}, r"trained model 'dcgan', this run trains 'mlp'"),
    ({"model.conditional": False}, r"model\.conditional=true, this run has model\.conditional=false"),
    ({"model.g_width": 16}, r"shape .* there, .* here; options differ: model\.g_width 8 there, 16 here"),
])
def test_what_cannot_transfer_is_refused_by_name_before_the_run_starts(tmp_path, source, change, message):
    overrides = {**TINY, "data.classes": [3, 4, 5], "model.conditional": True, **change}
    if overrides.get("model.name") == "mlp":
        del overrides["model.g_width"], overrides["model.d_width"]
    with pytest.raises(ConfigError, match=message):
        ganforge.train(overrides={**overrides, "train.init_from": str(source), "out": str(tmp_path / "t")})
    assert not (tmp_path / "t").exists()


def test_a_missing_source_or_checkpoint_is_named(tmp_path, source):
    with pytest.raises(CheckpointError, match=r"train\.init_from=.*nowhere.*does not exist"):
        run(tmp_path, "t", **{"train.init_from": str(tmp_path / "nowhere")})
    with pytest.raises(CheckpointError, match=r"has no checkpoint 'best' \(it has: last\)"):
        run(tmp_path, "t", **{"train.init_from": f"{source}:best"})
    assert source_checkpoint(f"{source}:last")[1:] == (source / "checkpoints" / "last.safetensors", "last")
    path = source / "checkpoints" / "last.safetensors"
    assert source_checkpoint(str(path)) == (path, path, "last")


def test_a_resumed_init_from_run_continues_exactly_without_its_source(tmp_path, source):
    """The resumed run has its own weights: moving the source away changes nothing."""
    settings = {"data.classes": [3, 4, 5], "model.conditional": True, "train.freeze": ["D:1"],
                "log.checkpoint_every": 2}
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    straight = run(tmp_path, "straight", **settings, **{"train.steps": 4, "train.init_from": str(copy)})
    run(tmp_path, "split", **settings, **{"train.steps": 2, "train.init_from": str(copy)})
    shutil.rmtree(copy)
    resumed = ganforge.train(resume=tmp_path / "split", overrides={"train.steps": 4})
    a, b = last(straight.dir)[0], last(resumed.dir)[0]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_refuses_a_changed_freeze(tmp_path):
    first = run(tmp_path, "r", **{"train.steps": 1})
    with pytest.raises(ConfigError, match=r"--resume: train\.freeze was None in this run, now \['D:1'\]"):
        ganforge.train(resume=first.dir, overrides={"train.steps": 2, "train.freeze": "D:1"})


# Freezing.
def test_frozen_parameters_and_their_ema_do_not_move_while_the_rest_trains(tmp_path):
    """StyleGAN from a pretrained run with FreezeD (D:2) and a fixed mapping network: every
    phase (D, lazy R1, G) ran, no phase gave a frozen parameter a gradient, and the frozen
    weights, and the EMA of the frozen mapping (which differed from the live one), are
    bit-identical to the source's."""
    source = run(tmp_path, "source", **STYLEGAN, **{"train.steps": 2})
    config = ganforge.make_config(overrides={**TINY, **STYLEGAN, "train.steps": 4, "out": str(tmp_path / "t"),
                                             "train.init_from": str(source.dir), "train.freeze": "D:2,G.mapping"})
    trainer = Trainer(config)
    trainer.run()
    assert trainer.frozen.params and all(p.grad is None and not p.requires_grad for p in trainer.frozen.params)
    stepped = {id(p) for group in trainer.optimizers["D"].param_groups for p in group["params"]}
    assert stepped and not stepped & {id(p) for p in trainer.frozen.params}
    theirs, mine = last(source.dir)[0], last(trainer.run_dir)[0]
    moved = {k: not torch.equal(theirs[k], mine[k]) for k in theirs
             if k.startswith(("nets.", "ema.")) and "w_avg" not in k and "noise_const" not in k}
    frozen = ("nets.D.fromrgb.", "nets.D.blocks.0.", "nets.G.mapping.", "ema.G.mapping.")
    assert sum(1 for k in moved if k.startswith(frozen)) >= 12
    assert not any(moved[k] for k in moved if k.startswith(frozen))
    assert any(not torch.equal(mine[k], mine["ema" + k[4:]]) for k in mine if k.startswith("nets.G.mapping.layers"))
    for part in ("nets.D.blocks.1.", "nets.D.out.", "nets.G.synthesis.", "ema.G.synthesis."):
        assert any(moved[k] for k in moved if k.startswith(part)), part
    assert ganforge.make_config(resume=trainer.run_dir).train.freeze == ["D:2", "G.mapping"]


def test_batch_norms_inside_frozen_blocks_keep_their_statistics(tmp_path, source):
    """Running means and variances are not parameters, but they are part of a frozen block:
    D:2 (DCGAN's first conv and conv + batch norm) keeps the source's statistics bit for bit
    over 3 steps, while the batch norms of G, which is not frozen, go on learning theirs."""
    target = run(tmp_path, "t", **{"train.steps": 3, "data.classes": [3, 4, 5], "model.conditional": True,
                                   "train.init_from": str(source), "train.freeze": "D:2"})
    theirs, mine = last(source)[0], last(target.dir)[0]
    for key in ("nets.D.body.3.running_mean", "nets.D.body.3.running_var"):
        assert torch.equal(theirs[key], mine[key]), key
    learning = [k for k in theirs if k.startswith("nets.G.") and k.endswith("running_mean")]
    assert learning and not any(torch.equal(theirs[k], mine[k]) for k in learning)


def test_freeze_checks_names_against_the_built_networks():
    nets = build_models(ModelConfig(name="dcgan", args={"g_width": 8, "d_width": 8}), DataShape(32, 1))
    assert blocks(nets["D"]) == [["body.0"], ["body.2", "body.3"], ["body.5", "body.6"], ["final"]]
    with pytest.raises(ConfigError, match=r"no network 'E'.*its networks: G, D"):
        freeze(["E:1"], nets, {"G", "D"})
    with pytest.raises(ConfigError, match=r"D has no part 'bdy'.*did you mean 'body'.*its parts: body, final"):
        freeze(["D.bdy"], nets, {"G", "D"})
    with pytest.raises(ConfigError, match=r"D\.body has no part '9'; its parts: 0, 1, 2"):
        freeze(["D.body.9"], nets, {"G", "D"})
    with pytest.raises(ConfigError, match=r"D has 4 blocks from the input \(body\.0, body\.2\+body\.3, "
                                          r"body\.5\+body\.6, final\); freeze fewer"):
        freeze(["D:4"], nets, {"G", "D"})
    with pytest.raises(ConfigError, match=r"freezes every parameter of D"):
        freeze(["D:3", "D.final"], nets, {"G", "D"})
    with pytest.raises(ConfigError, match=r"holds no parameters"):
        freeze(["D.body.1"], nets, {"G", "D"})  # a LeakyReLU
    frozen = freeze(["D:2", "G.net.0"], nets, {"G", "D"})
    assert frozen.names == {"D": {"body.0.weight", "body.2.weight", "body.3.weight", "body.3.bias"},
                            "G": {"net.0.weight"}}
    assert all(not p.requires_grad for p in frozen.params)
    assert len(frozen.trainable("D", nets["D"])) == len(list(nets["D"].parameters())) - 4


def test_growing_networks_take_module_paths_not_block_counts():
    nets = build_models(ModelConfig(name="progressive", args={"g_width": 4, "d_width": 4, "max_width": 8}),
                        DataShape(16, 1))
    with pytest.raises(ConfigError, match=r"D's part 'from_rgb' holds one module per key.*e\.g\. D\.from_rgb\.4"):
        freeze(["D:1"], nets, {"G", "D"})
    assert freeze(["D.from_rgb.16"], nets, {"G", "D"}).names["D"]


@pytest.mark.parametrize("entry", ["D", "D:0", "D:two", "D..x", "3", ":2"])
def test_freeze_syntax_is_checked_with_the_config(entry):
    with pytest.raises(ConfigError, match="train.freeze entry"):
        ganforge.make_config(overrides={"train.freeze": [entry], "out": "x"})
    assert parse_freeze("D:2") == ("D", 2, None) and parse_freeze("G.mapping") == ("G", None, "mapping")


# The command line.
def test_cli_init_from_with_freeze_and_the_resume_conflict(tmp_path, source, capsys):
    out = tmp_path / "cli"
    args = ["train", "--dataset", "digits", "--resolution", "16", "--steps", "1", "--batch-size", "8",
            "--set", "data.classes=[3, 4, 5]", "--set", "model.conditional=true", "--set", "model.g_width=8",
            "--set", "model.d_width=8", "--set", "log.grid_size=4", "--set", "log.tensorboard=no",
            "--init-from", str(source), "--freeze", "D:1"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "init-from" in printed and "loaded" in printed and "train.freeze D:1 -> D.body.0" in printed
    assert json.loads((out / "init_from.json").read_text())["frozen"] == {"D": ["body.0.weight"]}
    assert main(["train", "--resume", str(out), "--init-from", str(source)]) == 2
    assert "--init-from starts a new run" in error_line(capsys)


def test_classify_train_fine_tunes_a_classifier_from_another(tmp_path, capsys):
    small = ["--dataset", "digits", "--resolution", "16", "--batch-size", "16", "--steps", "2",
             "--set", "model.width=4", "--set", "model.hidden=8", "--set", "log.tensorboard=no", "--quiet"]
    assert main(["classify", "train", *small, "--set", "data.classes=[0, 1, 2, 3, 4]",
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["classify", "train", *small, "--set", "data.classes=[7, 8, 9]", "--freeze", "C.body",
                 "--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    a, b = last(tmp_path / "a")[0], last(tmp_path / "b")[0]
    assert torch.equal(a["nets.C.body.0.weight"], b["nets.C.body.0.weight"])   # loaded, then frozen
    assert not torch.equal(a["nets.C.head.1.weight"], b["nets.C.head.1.weight"])  # fine-tuned
    assert b["nets.C.out.weight"].shape[0] == 3
    report = json.loads((tmp_path / "b" / "init_from.json").read_text())
    assert {item["tensor"] for item in report["reinitialised"]} == {"nets.C.out.weight", "nets.C.out.bias"}


# Choosing the target set.
def test_classes_keep_and_relabel_in_the_order_given():
    full = load_dataset(DataConfig(name="digits", resolution=8))
    part = load_dataset(DataConfig(name="digits", resolution=8, classes=[7, "2"]))
    assert part.class_names == ["7", "2"] and part.num_classes == 2
    assert len(part) == int(((full.labels == 7) | (full.labels == 2)).sum())
    sevens = part.images[part.labels == 0]
    assert torch.equal(sevens, full.images[full.labels == 7])
    test = load_dataset(DataConfig(name="digits", resolution=8, classes=[7, 2]), "test")
    assert set(test.labels.tolist()) == {0, 1}


def test_a_limit_is_fixed_class_balanced_nested_and_leaves_the_test_split_whole():
    config = dict(name="digits", resolution=8, classes=[1, 2, 3])
    small = load_dataset(DataConfig(**config, limit=30))
    large = load_dataset(DataConfig(**config, limit=300))
    assert len(small) == 30 and torch.bincount(small.labels).tolist() == [10, 10, 10]
    assert torch.equal(small.images, load_dataset(DataConfig(**config, limit=30)).images)
    # The 30 images are among the 300 (rows compared as bytes).
    rows = {bytes(image.flatten().tolist()) for image in large.images}
    assert all(bytes(image.flatten().tolist()) in rows for image in small.images)
    whole = load_dataset(DataConfig(**config), "test")
    assert len(load_dataset(DataConfig(**config, limit=30), "test")) == len(whole) > 30
    order = balanced_order(torch.tensor([0, 0, 0, 0, 1, 1]), 6)
    assert sorted(order.tolist()) == list(range(6)) and sorted(order[:4].tolist()) != [0, 1, 2, 3]
    assert [int(torch.tensor([0, 0, 0, 0, 1, 1])[i]) for i in order[:4]].count(1) == 2


def test_bad_classes_and_limits_are_refused_by_name(unlabelled_folder):
    with pytest.raises(DataError, match=r"has no class 'ten'; its classes: 0, 1"):
        load_dataset(DataConfig(name="digits", resolution=8, classes=["ten"]))
    with pytest.raises(DataError, match=r"has classes 0 to 9, not 12"):
        load_dataset(DataConfig(name="digits", resolution=8, classes=[12]))
    with pytest.raises(DataError, match=r"has no labels to choose classes by"):
        load_dataset(DataConfig(name=f"folder:{unlabelled_folder}", resolution=8, classes=[0]))
    for key, value, why in [("data.limit", 0, "at least 1"), ("data.classes", [], "non-empty"),
                            ("data.classes", [1, 1], "twice"), ("data.classes", [-1], "non-empty")]:
        with pytest.raises(ConfigError, match=f"{key}=.*{why}"):
            ganforge.make_config(overrides={key: value, "out": "x"})
