"""`ganforge export RUN --format onnx [--out G.onnx]`: a run's network as an ONNX graph,
checked against PyTorch with onnxruntime."""
from __future__ import annotations

import argparse


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="export a run's (EMA) network to ONNX, checked with onnxruntime",
        description="Export the generator (EMA weights), editing network, one direction of a "
                    "translation run, or a classifier to ONNX with a dynamic batch (and height and "
                    "width for fully convolutional networks). Labels, truncation and noise are "
                    "graph inputs where the network has them; images are float32 in [-1, 1]. The "
                    "file is run with onnxruntime on random inputs and written only when it "
                    "matches PyTorch within --atol.")
    parser.add_argument("run", metavar="RUN", help="run directory written by ganforge train")
    parser.add_argument("--format", default="onnx", help="export format; onnx is the only one [default: onnx]")
    parser.add_argument("--out", default=None,
                        help="the .onnx file [default: RUN/export/G.onnx; G-a2b.onnx for translation, "
                             "C.onnx for classifiers]")
    parser.add_argument("--checkpoint", default="last",
                        help="last, best, step-NNNNNN or a .safetensors path [default: last]")
    parser.add_argument("--direction", default=None,
                        help="translation runs: a2b (domain A to B) or b2a [default: a2b]")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset; below 18 the graph is converted down [default: the exporter's choice]")
    parser.add_argument("--atol", type=float, default=None,
                        help="largest absolute difference from PyTorch allowed on the [-1, 1] scale "
                             "[default: 1e-3, an eighth of a uint8 level]")
    parser.add_argument("--tileable", action="store_true",
                        help="texture runs: circular padding, so the images wrap seamlessly")
    parser.add_argument("--fixed-noise", action="store_true",
                        help="stylegan: bake in the run's fixed noise maps (as ganforge sample uses) "
                             "instead of taking noise inputs")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def _shape(value: dict) -> str:
    return " x ".join(map(str, value["shape"])) or "scalar"


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..export import DEFAULT_ATOL, FORMATS, export_onnx

    if args.format not in FORMATS:
        raise ConfigError(f"--format {args.format!r}: ganforge exports {', '.join(FORMATS)} only")
    atol = DEFAULT_ATOL if args.atol is None else args.atol
    report = export_onnx(args.run, args.out, args.checkpoint, args.direction, args.opset, atol,
                         args.force, args.tileable, args.fixed_noise)
    print(f"wrote {report['path']} ({report['kind']} network of {report['model']}, step {report['step']}, "
          f"opset {report['opset']})")
    for value in report["inputs"]:
        print(f"  input  {value['name']}: {_shape(value)} {value['type']}")
    for value in report["outputs"]:
        scale = " in [-1, 1]" if value["name"] == "images" else ""
        print(f"  output {value['name']}: {_shape(value)} {value['type']}{scale}")
    sizes = "; ".join(", ".join(f"{k} {v}" for k, v in row.items() if k not in ("output", "max_abs_diff"))
                      for row in report["checks"])
    print(f"max abs difference vs PyTorch: {report['max_abs_diff']:.3g} (onnxruntime at {sizes}; "
          f"--atol {atol:g})")
    return 0
