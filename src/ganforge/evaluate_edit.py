"""Evaluating editing runs: the model beside the classical method a user would otherwise use.

Held-out images (the data set's test split: photos the model never saw, or the test digits)
are degraded exactly as in training, with a fixed seed, and quantised to 8 bits (what a user
has in a file). The model and each classical baseline restore them; every output is quantised
again and scored against the original with scikit-image's PSNR and SSIM, on RGB and on the Y
channel (BasicSR's convention, with `scale` border pixels cropped for super-resolution). Tasks
with a hole also report PSNR inside the hole, FID/KID of the composites in the feature
classifier's space (labelled sets), and for object replacement whether the feature classifier
recognises the requested class in the region, and whether anything outside it changed.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import atomic
from .data import ImageSet, load_dataset, to_float, to_uint8
from .data.degrade import parse_degradation
from .errors import ConfigError, DataError
from .inference import TrainedEditor, load

MAX_IMAGES = 1000          # held-out images scored at most (a fixed subset beyond that)
CHUNK = 200                # images per forward pass for equal-sized sets


# Classical baselines: uint8-quantised float H x W x C in [0, 1] in, same out.
def _bicubic(source: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    channels = [Image.fromarray(source[..., c].astype(np.float32), "F").resize(
        (size[1], size[0]), Image.Resampling.BICUBIC) for c in range(source.shape[-1])]
    return np.clip(np.stack([np.asarray(c) for c in channels], -1), 0, 1)


def _denoisers(sigma: float) -> dict:
    """scikit-image's three classical denoisers, told the true noise level (in [0, 1] units)."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    def nl_means(x):  # drops a single channel axis: put it back
        return denoise_nl_means(x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                fast_mode=True, channel_axis=-1).reshape(x.shape)

    def wavelet(x):
        return denoise_wavelet(x, sigma=sigma, method="BayesShrink", mode="soft",
                               rescale_sigma=True, channel_axis=-1)

    def tv(x):
        return denoise_tv_chambolle(x, weight=sigma * 0.9, channel_axis=-1)
    return {"nl_means": nl_means, "wavelet": wavelet, "tv_chambolle": tv}


def _biharmonic(source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    return inpaint_biharmonic(source, mask.astype(bool), channel_axis=-1)


def baselines(spec: str, target_size: tuple[int, int], channels: int) -> dict:
    """{name: fn(source, mask) -> estimate} for the degradation `spec`; empty when no
    classical method fits (each estimate at the target's size and channel count)."""
    kinds = [part.split(":")[0] for part in spec.split("+") if part]
    args = {part.split(":")[0]: part.split(":", 1)[1] for part in spec.split("+") if ":" in part}
    found = {}
    if any(k == "mask" for k in kinds):
        found["inpaint_biharmonic"] = lambda s, m: _biharmonic(s, m)
    elif "downscale" in kinds:
        found["bicubic"] = lambda s, m: _bicubic(s, target_size)
    elif "noise" in kinds:
        sigma = float(args["noise"]) / 255
        for name, fn in _denoisers(sigma).items():
            found[name] = (lambda f: lambda s, m: f(s))(fn)
    elif "gray" in kinds:
        found["gray_input"] = lambda s, m: np.repeat(s, channels, -1) if s.shape[-1] != channels else s
    elif "lowlight" in kinds:
        from skimage import exposure

        gamma = float(args["lowlight"])
        found["inverse_gamma"] = lambda s, m: exposure.adjust_gamma(s, 1 / gamma)
        # CLAHE equalises an RGB image on its HSV value by itself; a gray one is H x W.
        found["clahe"] = lambda s, m: (exposure.equalize_adapthist(s) if s.shape[-1] == 3
                                       else exposure.equalize_adapthist(s[..., 0])[..., None])
    elif "blur" in kinds:
        from skimage.restoration import richardson_lucy

        sigma = float(args["blur"])
        radius = int(np.ceil(3 * sigma))
        axis = np.arange(-radius, radius + 1)
        kernel = np.exp(-axis ** 2 / (2 * sigma ** 2))
        psf = np.outer(kernel, kernel) / np.outer(kernel, kernel).sum()
        found["richardson_lucy"] = lambda s, m: np.stack(
            [richardson_lucy(s[..., c], psf, num_iter=30) for c in range(s.shape[-1])], -1)
    if spec and "downscale" not in kinds and "gray" not in kinds:
        found["input"] = lambda s, m: s
    return found


# Scores.
def _y(image: np.ndarray) -> np.ndarray:
    """The Y channel of YCbCr (ITU-R 601, studio range), in [0, 1], as BasicSR measures."""
    if image.shape[-1] == 1:
        return image[..., 0]
    return (16 + 65.481 * image[..., 0] + 128.553 * image[..., 1] + 24.966 * image[..., 2]) / 255


def _gradient(image: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels, down and across."""
    return np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean()


def _quantise(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255) / 255


def image_scores(estimate: np.ndarray, target: np.ndarray, border: int = 0,
                 mask: np.ndarray | None = None) -> dict:
    """PSNR and SSIM (RGB and Y) of one quantised estimate, its detail (gradient energy
    against the original's: the PSNR/realism trade-off shows here), PSNR inside the hole."""
    from skimage.metrics import peak_signal_noise_ratio as psnr
    from skimage.metrics import structural_similarity as ssim

    estimate = _quantise(estimate)
    if border:
        estimate, target = estimate[border:-border, border:-border], target[border:-border, border:-border]
        mask = None if mask is None else mask[border:-border, border:-border]
    small = min(target.shape[:2]) < 7
    scores = {"psnr": psnr(target, estimate, data_range=1.0),
              "psnr_y": psnr(_y(target), _y(estimate), data_range=1.0)}
    if not small:
        scores["ssim"] = ssim(target, estimate, data_range=1.0, channel_axis=-1)
        scores["ssim_y"] = ssim(_y(target), _y(estimate), data_range=1.0)
    # Detail: mean gradient magnitude against the original's (1: as sharp; < 1: blurrier).
    scores["detail"] = _gradient(estimate) / max(_gradient(target), 1e-12)
    if mask is not None and mask.any():
        error = ((estimate - target) ** 2)[mask.astype(bool)].mean()
        scores["psnr_hole"] = float(10 * np.log10(1.0 / max(error, 1e-12)))
    return {k: float(min(v, 100.0)) for k, v in scores.items()}


def _mean(rows: list[dict]) -> dict:
    keys = rows[0].keys() if rows else []
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


# Held-out inputs.
def held_out(config, n: int | None, seed: int):
    """(targets, sources, masks, requested classes, originals' region classes) for the test
    split, degraded with `seed`: lists of CPU tensors, sources quantised to 8 bits."""
    degradation = parse_degradation(config.data.degrade) if config.data.degrade else None
    try:
        data = load_dataset(config.data, "test")
    except DataError as error:
        raise DataError(f"cannot evaluate: {error}") from None
    generator = torch.Generator().manual_seed(seed)
    if isinstance(data, ImageSet):
        count = min(len(data), n or MAX_IMAGES)
        index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count].sort().values
        data = data.subset(index)
        chunks = [(to_float(data.images[i:i + CHUNK]),
                   None if data.sources is None else to_float(data.sources[i:i + CHUNK]),
                   None if data.regions is None else data.regions[i:i + CHUNK].long(),
                   None if data.region_labels is None else data.region_labels[i:i + CHUNK])
                  for i in range(0, len(data), CHUNK)]
    else:
        scale = degradation.scale if degradation is not None else 1
        images = [img[:, :img.shape[1] // scale * scale, :img.shape[2] // scale * scale]
                  for img in data.full_images()][:n or None]
        chunks = [(to_float(img[None].cpu()), None, None, None) for img in images]
    out = {"target": [], "source": [], "mask": [], "requested": [], "original": []}
    for images, sources, regions, region_classes in chunks:
        mask = requested = original = None
        if sources is None:
            made = degradation(images, generator, regions=regions, region_labels=region_classes)
            sources, mask, original = made.source, made.mask, made.region_labels
        if original is not None:
            # Ask for another class than the one removed, so the hole cannot be guessed back.
            classes = int(region_classes.max()) + 1
            shift = torch.randint(1, classes, original.shape, generator=generator)
            requested = (original + shift) % classes
        out["target"].append(images)
        out["source"].append(to_float(to_uint8(sources)))
        out["mask"].append(mask)
        out["requested"].append(requested)
        out["original"].append(original)
    return out


def hwc01(tensor: torch.Tensor) -> np.ndarray:
    """float C x H x W in [-1, 1] -> H x W x C in [0, 1] (what scikit-image measures)."""
    return ((tensor.float().permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)


def evaluate_editing(run_dir: str | Path, n: int | None = None, seed: int = 0, checkpoint: str = "last",
                     device: str = "cpu", tile: int | None = None, classifier=None, quiet: bool = False) -> dict:
    """Score an editing run on held-out images beside classical baselines; writes RUN/eval.json.

    Args:
        run_dir: a run directory of an editing task (inpaint, super-resolve, denoise, ...).
        n: held-out images at most (default: all, up to 1,000).
        seed: seed of the degradations (masks, noise) applied to the held-out images.
        tile: run the model in tiles of this size (as `ganforge edit --tile`).
        classifier: a `ganforge classify train` run for the feature space (default: cached).

    Example:
        >>> report = evaluate_editing("runs/sr")
        >>> report["model"]["psnr_y"], report["baselines"]["bicubic"]["psnr_y"]
    """
    model = load(run_dir, checkpoint, device)
    if not isinstance(model, TrainedEditor):
        raise ConfigError(f"run {str(run_dir)!r} is not an editing run")
    config = model.config
    data = held_out(config, n, seed)
    border = model.scale if model.scale > 1 else 0
    rows: dict[str, list] = {"model": []}
    outputs = []
    spec = config.data.degrade
    for target, source, mask, requested in zip(data["target"], data["source"], data["mask"], data["requested"]):
        labels = requested if model.num_classes else None
        result = model.edit_tensor(source, mask, labels, tile=tile)
        outputs.append(to_uint8(result))
        if requested is not None:
            continue  # another class than the original's was asked for: PSNR would mean nothing
        size = tuple(target.shape[-2:])
        fns = baselines(spec, size, target.shape[1])
        for i in range(len(target)):
            goal, hole = hwc01(target[i]), None if mask is None else mask[i, 0].numpy()
            rows["model"].append(image_scores(hwc01(result[i]), goal, border, hole))
            for name, fn in fns.items():
                estimate = fn(hwc01(source[i]), hole)
                if hole is not None:  # baselines are composited too
                    estimate = np.where(hole[..., None] > 0, estimate, goal)
                rows.setdefault(name, []).append(image_scores(estimate, goal, border, hole))
    model_rows = rows.pop("model")
    report = {"task": config.task, "degrade": spec, "model": _mean(model_rows) if model_rows else {},
              "baselines": {k: _mean(v) for k, v in rows.items()}}
    if data["mask"][0] is not None:
        report.update(_hole_checks(model, config, data, outputs, classifier, quiet))
    report["setup"] = {"run": str(run_dir), "checkpoint": checkpoint, "step": model.step,
                       "images": sum(len(t) for t in data["target"]), "seed": seed,
                       "border_crop": border, "tile": tile, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic.write_json(Path(run_dir) / "eval.json", report)
    return report


def _hole_checks(model, config, data, outputs, classifier, quiet) -> dict:
    """Untouched pixels outside the hole; FID/KID of composites (labelled sets); for
    replacement, whether the requested class is recognised in the region."""
    changed = 0
    for made, mask, source in zip(outputs, data["mask"], data["source"]):  # chunks, maybe of other sizes
        outside = ~mask.bool().expand_as(made)
        changed += int((made[outside] != to_uint8(source)[outside]).sum())
    extra = {"changed_outside_hole": changed}
    if len({tuple(t.shape[-2:]) for t in data["target"]}) > 1:
        return extra  # whole photos of several sizes: no feature space of their own (the hole PSNR is the score)
    targets = torch.cat([to_uint8(t) for t in data["target"]])
    masks = torch.cat(data["mask"]).bool()
    made = torch.cat(outputs)
    sources = torch.cat([to_uint8(s) for s in data["source"]])
    if data["requested"][0] is not None:
        extra.update(_replacement_accuracy(config, made, masks, torch.cat(data["requested"]),
                                           targets, torch.cat(data["original"]), classifier, quiet))
        return extra
    try:
        from .evaluate import Evaluator, build_extractor

        extractor = build_extractor(config.data, classifier, quiet=quiet)
    except DataError:
        return extra  # unlabelled data: no feature space of its own
    evaluator = Evaluator(config.data, extractor, n=len(made), seed=0)
    scores = {"model": evaluator.score_images(made)}
    spec, size = config.data.degrade, tuple(targets.shape[-2:])
    for name, fn in baselines(spec, size, targets.shape[1]).items():
        if name == "input":
            continue
        estimates = []
        for i in range(len(made)):
            hole = masks[i, 0].numpy()
            goal = targets[i].permute(1, 2, 0).numpy() / 255
            estimate = np.where(hole[..., None], fn(sources[i].permute(1, 2, 0).numpy() / 255, hole), goal)
            estimates.append(torch.from_numpy(np.round(np.clip(estimate, 0, 1) * 255)).permute(2, 0, 1))
        scores[name] = evaluator.score_images(torch.stack(estimates).to(torch.uint8))
    scores["real floor"] = evaluator.floor
    extra["feature_scores"] = scores
    extra["feature_setup"] = evaluator.setup
    return extra


def _replacement_accuracy(config, made, masks, requested, targets, original, classifier, quiet) -> dict:
    """Classify the tile that holds each hole with the base set's feature classifier."""
    import dataclasses

    from .evaluate import build_extractor

    base = config.data.name.split(":", 1)[1]
    tile = config.data.resolution // 2
    extractor = build_extractor(dataclasses.replace(config.data, name=base, resolution=tile, degrade=""),
                                classifier, quiet=quiet)
    crops, truth = [], []
    for i in range(len(made)):
        ys, xs = torch.nonzero(masks[i, 0], as_tuple=True)
        top, left = int(ys.min()) // tile * tile, int(xs.min()) // tile * tile
        crops.append(made[i, :, top:top + tile, left:left + tile])
        truth.append(targets[i, :, top:top + tile, left:left + tile])
    _, probs = extractor.features_and_probs(torch.stack(crops))
    _, real_probs = extractor.features_and_probs(torch.stack(truth))
    return {"replaced_accuracy": float((probs.argmax(1) == requested).float().mean()),
            "replaced_chance": 1 / probs.shape[1],
            "original_tile_accuracy": float((real_probs.argmax(1) == original).float().mean())}


def format_edit_table(report: dict) -> str:
    """Model and baselines side by side: PSNR/SSIM (RGB, Y), hole PSNR, FID where measured."""
    keys = [k for k in ("psnr", "psnr_y", "ssim", "ssim_y", "psnr_hole", "detail") if k in report["model"]]
    columns = {"model": report["model"], **report["baselines"]}
    lines = []
    if keys:
        lines += [f"{'':<20}" + "".join(f"{k:>10}" for k in keys), "-" * (20 + 10 * len(keys))]
    for name, values in columns.items() if keys else ():
        lines.append(f"{name:<20}" + "".join(f"{values.get(k, float('nan')):>10.4g}" for k in keys))
    if "feature_scores" in report:
        lines.append("composites in the feature classifier's space (FID, KID lower is better; "
                     "precision, recall higher):")
        for name, values in report["feature_scores"].items():
            lines.append(f"  {name:<20}" + "  ".join(f"{k} {values[k]:.3g}" for k in
                                                     ("fid", "kid", "precision", "recall") if k in values))
    if "replaced_accuracy" in report:
        lines.append(f"requested class recognised in the region: {report['replaced_accuracy']:.1%} "
                     f"(chance {report['replaced_chance']:.0%}; original tiles "
                     f"{report['original_tile_accuracy']:.1%})")
    if "changed_outside_hole" in report:
        lines.append(f"pixels changed outside the hole: {report['changed_outside_hole']}")
    setup = report["setup"]
    lines.append(f"{setup['images']} held-out images (seed {setup['seed']}), step {setup['step']}, "
                 f"task {report['task']}, inputs made by {report['degrade'] or 'real pairs'}"
                 + (f", {setup['border_crop']}-pixel border crop" if setup["border_crop"] else ""))
    return "\n".join(lines)
