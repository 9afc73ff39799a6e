"""Texture synthesis, measured: for each texture photo scikit-image bundles (brick, grass,
gravel), a 128x128 crop is the exemplar; 256x256 outputs are made by the spatial GAN
(`ganforge texture train`, then `texture sample`, also `--tileable` and `--match-histogram`), by Gram-matrix
optimisation (`texture gram`) and by random tiling of exemplar patches (the baseline), and
scored with ganforge.texture.analysis: texture similarity to the exemplar (and, as the
reference, of another 128x128 crop of the same photo), diversity between outputs of one
method (a copy of the exemplar would score 0), the seam score across the wrap (mean of 16
tileable samples), and, with
--classifier RUN, how often a texture classifier (`ganforge texture classify train textures`)
names the exemplar's texture in 64x64 crops of the outputs.

Usage:
    python benchmarks/texture_table.py --out runs/texture-bench [--steps 2000] [--time-budget 540]
        [--classifier RUN]

Training runs are kept in OUT/<texture>/ and reused when finished (a finished run is not
trained again); the table goes to OUT/results.json and the figure to OUT/textures.png.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ganforge
from ganforge import atomic, checkpoint, rundir
from ganforge.cli import main as cli
from ganforge.imageio import save_png
from ganforge.texture import analysis
from ganforge.texture.synthesis import gram_synthesis, match_histogram, random_tiling, sample_gan

TEXTURES = ("brick", "grass", "gravel")
EXEMPLAR = (slice(192, 320), slice(192, 320))   # the centre 128x128 of the 512x512 photo
REFERENCE = (slice(0, 128), slice(0, 128))      # another real crop, never trained on
SIZE = 256
SAMPLES = 4
SEAM_SAMPLES = 16   # the seam of one sample depends on what crosses its wrap (a mortar line or not)


def photo(name: str) -> np.ndarray:
    import skimage.data
    return getattr(skimage.data, name)()


def trained(run: Path, steps: int) -> bool:
    last = rundir.checkpoint_path(run, "last")
    return last.is_file() and checkpoint.read_meta(last)["step"] >= steps


def crops_named(classifier, images: list[np.ndarray], want: str, crop: int = 64) -> float:
    """Share of non-overlapping crop x crop tiles of `images` the classifier names `want`."""
    tiles = [image[y:y + crop, x:x + crop] for image in images
             for y in range(0, image.shape[0] - crop + 1, crop) for x in range(0, image.shape[1] - crop + 1, crop)]
    batch = torch.from_numpy(np.stack([t if t.ndim == 3 else t[..., None] for t in tiles])).permute(0, 3, 1, 2)
    predicted = classifier.predict(batch)
    names = [classifier.class_names[int(i)] for i in predicted]
    return float(np.mean([n == want for n in names]))


def score(exemplar: np.ndarray, outputs: list[np.ndarray]) -> dict:
    described = analysis.describe(exemplar)
    return {"similarity": float(np.mean([analysis.texture_similarity(o, described) for o in outputs])),
            "diversity": float(analysis.diversity(outputs)) if len(outputs) > 1 else None}


def gram_outputs(out: Path, name: str, exemplar: np.ndarray, steps: int) -> tuple[list[np.ndarray], float]:
    """The two Gram-optimisation outputs and the seconds each took, kept in OUT (they do not
    depend on the GAN, so a rerun that re-scores changed GAN sampling reuses them)."""
    paths = [out / f"{name}-gram-{seed}.png" for seed in range(2)]
    timing = out / f"{name}-gram.json"
    if all(p.is_file() for p in paths) and timing.is_file() and \
            json.loads(timing.read_text()).get("steps") == steps:
        images = [np.asarray(Image.open(p)) for p in paths]
        images = [image[..., None] if image.ndim == 2 else image for image in images]
        return images, json.loads(timing.read_text())["seconds_per_image"]
    t0 = time.perf_counter()
    images = [gram_synthesis(exemplar, SIZE, SIZE, seed, steps) for seed in range(2)]
    seconds = (time.perf_counter() - t0) / 2
    for image, path in zip(images, paths):
        save_png(image, path)
    atomic.write_json(timing, {"steps": steps, "seconds_per_image": round(seconds, 1)})
    return images, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/texture-bench")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds of training per texture at most (a run cut short is kept as it is)")
    parser.add_argument("--gram-steps", type=int, default=400)
    parser.add_argument("--textures", default=",".join(TEXTURES))
    parser.add_argument("--classifier", default=None, help="a texture classify run on the bundled textures")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classifier = None
    if args.classifier:
        from ganforge.inference import load_classifier
        classifier = load_classifier(args.classifier)
    results, figure = {}, []
    for name in args.textures.split(","):
        image = photo(name)
        exemplar, reference = image[EXEMPLAR], image[REFERENCE]
        path = out / f"{name}-exemplar.png"
        Image.fromarray(exemplar).save(path)
        run = out / name
        started = time.perf_counter()
        if not trained(run, args.steps) and not (run.exists() and args.time_budget):
            if run.exists():
                cli(["train", "--resume", str(run), "--steps", str(args.steps)])
            else:
                budget = ["--time-budget", str(args.time_budget)] if args.time_budget else []
                cli(["texture", "train", str(path), "--out", str(run), "--steps", str(args.steps),
                     *budget, "--set", "log.progress=false"])
        train_s = float(ganforge.load(run).meta["elapsed_s"])
        net = ganforge.load(run).net
        gan = [sample_gan(net, SIZE, SIZE, seed)[0] for seed in range(SAMPLES)]
        matched = [match_histogram(g, exemplar) for g in gan]  # a gray exemplar is taken as H x W x 1
        tileables = [sample_gan(net, SIZE, SIZE, seed, tileable=True)[0] for seed in range(SEAM_SAMPLES)]
        tileable = tileables[0]
        gram, gram_s = gram_outputs(out, name, exemplar, args.gram_steps)
        tiling = [random_tiling(exemplar, SIZE, SIZE, seed) for seed in range(SAMPLES)]
        row = {"train_s": round(train_s, 1), "gram_s_per_image": round(gram_s, 1),
               "gan": score(exemplar, gan), "gan_matched": score(exemplar, matched),
               "gan_tileable": score(exemplar, tileables[:SAMPLES]),
               "gram": score(exemplar, gram), "tiling": score(exemplar, tiling),
               "real_crop": score(exemplar, [reference])}
        row["gan_tileable"]["seam"] = float(np.mean([analysis.seam_score(t) for t in tileables]))
        row["gan"]["seam"] = float(np.mean([analysis.seam_score(g) for g in gan]))
        row["gan_matched"]["seam"] = float(np.mean([analysis.seam_score(g) for g in matched]))
        row["tiling"]["seam"] = float(np.mean([analysis.seam_score(t) for t in tiling]))
        if classifier is not None:
            for method, images in (("gan", gan), ("gan_matched", matched), ("gram", gram), ("tiling", tiling),
                                   ("gan_tileable", tileables[:SAMPLES])):
                row[method]["named_as_exemplar"] = crops_named(classifier, images, name)
        results[name] = row
        print(name, json.dumps(row), f"({time.perf_counter() - started:.0f} s)", flush=True)
        strip = [np.pad(exemplar, ((64, 64), (64, 64)), constant_values=255)[..., None] if exemplar.ndim == 2
                 else exemplar, gan[0], tileable, gram[0], tiling[0]]
        figure.append(np.concatenate([s if s.ndim == 3 else s[..., None] for s in strip], axis=1))
    atomic.write_json(out / "results.json", results)
    picture = np.concatenate([np.pad(f, ((0, 4), (0, 0), (0, 0)), constant_values=255) for f in figure])
    save_png(picture, out / "textures.png")
    print(f"wrote {out / 'results.json'} and {out / 'textures.png'}")


if __name__ == "__main__":
    main()
