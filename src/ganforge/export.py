"""Export a trained run's network to ONNX, checked against PyTorch with onnxruntime.

The graph is the network as inference runs it, not the bare module: a small wrapper mirrors
what `ganforge.inference` does around the network for each kind of run, so the ONNX file needs
no Python around it:

- generation (dcgan, mlp, resnet, progressive, stylegan; the VAE's decoder): z (and labels;
  stylegan also truncation and one noise map per conv layer) -> images, dynamic batch;
- texture (spatial): a latent field N x z_channels x h x w -> images of h x w times the stride;
- editing (inpaint, super-resolve, denoise, ...): image (+ mask, + labels) of any size ->
  images; holes are cleared, the input padded to the network's stride (reflect) and the output
  clamped, composited and cropped back, as `TrainedEditor.edit_tensor` does;
- translation (cyclegan): one direction's generator, image of any size -> images, padded and
  clamped as `TrainedTranslator.translate_tensor` does;
- classification (cnn, resnet-cnn): images -> class logits.

Noise that the network would draw is an input instead (stylegan's per-layer noise maps), so
the exported graph is a pure function of its inputs. Images in and out are float32 in [-1, 1]
(uint8 = round((x + 1) * 127.5)). The file is written to a temporary name beside the target,
verified with onnxruntime on random inputs at two batch sizes (and two spatial sizes where
they are dynamic), and renamed only when the largest difference is within `atol`.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import replacing
from .errors import ConfigError, GanforgeError
from .inference.generator import rebuild
from .inference.translator import check_direction
from .objectives.image2image import run_generator
from .rundir import find_checkpoint
from . import checkpoint

FORMATS = ("onnx",)
DEFAULT_ATOL = 1e-3   # an eighth of one uint8 level (2 / 255) on the [-1, 1] scale
EXAMPLE_BATCH = 2     # torch.export specialises dimensions whose example is 0 or 1
CHECK_BATCHES = (1, 3)


class ExportError(GanforgeError):
    """The exporter failed, or the exported graph disagrees with PyTorch."""


@dataclass
class Input:
    """One graph input: its name, dims (ints, or names of dynamic axes), and how to draw it."""

    name: str
    dims: tuple
    draw: str = "normal"          # normal, uniform (in [-1, 1]), mask, labels, truncation
    classes: int = 0

    def make(self, sizes: dict[str, int], generator: torch.Generator) -> torch.Tensor:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in self.dims)
        if self.draw == "labels":
            return torch.randint(0, self.classes, shape, generator=generator)
        if self.draw == "truncation":
            return torch.rand(shape, generator=generator) * 0.5 + 0.5
        if self.draw == "mask":
            return (torch.rand(shape, generator=generator) < 0.3).float()
        if self.draw == "uniform":
            return torch.rand(shape, generator=generator) * 2 - 1
        return torch.randn(shape, generator=generator)


@dataclass
class Graph:
    """What gets exported: the network, a function of its named inputs, and the inputs."""

    net: nn.Module
    fn: Callable[..., torch.Tensor]
    inputs: list[Input]
    output: str                               # "images" or "logits"
    output_dims: tuple                        # written into the file (the exporter's names are sympy)
    kind: str
    example: dict[str, int]                   # sizes of the dynamic axes for tracing
    checks: list[dict[str, int]]              # sizes to verify at
    notes: dict = field(default_factory=dict)  # written into the file's metadata


class _Wrapper(nn.Module):
    """Positional tensors in `names` order -> fn(net, **named): what torch.export traces."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.net, self.fn, self.names = graph.net, graph.fn, [i.name for i in graph.inputs]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(self.net, **dict(zip(self.names, inputs)))


# The graphs, one per kind of run.
def _pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Bottom/right reflect padding to a multiple of `stride`, as `inference.tiles.run_padded`
    pads every input at least `stride` pixels high and wide."""
    if stride == 1:
        return x
    height, width = x.shape[-2:]
    return F.pad(x, (0, (stride - width % stride) % stride, 0, (stride - height % stride) % stride),
                 mode="reflect")


def _generation(net: nn.Module, fixed_noise: bool) -> Graph:
    inputs = [Input("z", ("batch", net.latent_dim))]
    if net.num_classes:
        inputs.append(Input("labels", ("batch",), "labels", net.num_classes))
    noise_shapes = []
    if getattr(net, "supports_truncation", False):
        inputs.append(Input("truncation", ("batch",), "truncation"))   # psi per image
        if not fixed_noise:
            noise_shapes = net.synthesis.noise_shapes()
            inputs += [Input(f"noise_{i}", ("batch", *shape)) for i, shape in enumerate(noise_shapes)]

    def fn(net, z, labels=None, truncation=None, **noise):
        extra = {} if truncation is None else {"truncation": truncation[:, None]}
        if noise:
            extra["noise"] = [noise[f"noise_{i}"] for i in range(len(noise))]
        return net(z, labels, **extra)

    # noise: "inputs" (N(0, 1) maps noise_0, ... of `noise_shapes`), "fixed" (the run's own maps,
    # as ganforge sample uses them) or "none" (the network draws no noise).
    notes = {"noise": "inputs" if noise_shapes else "fixed" if fixed_noise else "none"}
    if noise_shapes:
        notes["noise_shapes"] = [list(shape) for shape in noise_shapes]   # each input is N x these
    return Graph(net, fn, inputs, "images", ("batch", net.channels, net.resolution, net.resolution),
                 "generation", {"batch": EXAMPLE_BATCH},
                 [{"batch": b} for b in CHECK_BATCHES], notes)


def _texture(net: nn.Module, tileable: bool) -> Graph:
    net.tileable(tileable)
    field_size = max(net.field, 2)
    inputs = [Input("z", ("batch", net.z_channels, "field_height", "field_width"))]
    out = ("batch", net.channels, f"{net.stride}*field_height", f"{net.stride}*field_width")
    return Graph(net, lambda net, z: net(z), inputs, "images", out, "texture",
                 {"batch": EXAMPLE_BATCH, "field_height": field_size + 1, "field_width": field_size + 2},
                 [{"batch": 1, "field_height": field_size, "field_width": field_size},
                  {"batch": 3, "field_height": field_size + 1, "field_width": field_size + 3}],
                 {"stride": net.stride, "tileable": tileable})


def _editing(net: nn.Module, meta: dict) -> Graph:
    shape = meta["shape"]
    channels, stride, scale = shape["in_channels"], getattr(net, "stride", 1), shape.get("scale", 1)
    inputs = [Input("image", ("batch", channels, "height", "width"), "uniform")]
    if shape.get("mask"):
        inputs.append(Input("mask", ("batch", 1, "height", "width"), "mask"))
    if net.num_classes:
        inputs.append(Input("labels", ("batch",), "labels", net.num_classes))

    def fn(net, image, mask=None, labels=None):
        # As TrainedEditor.edit_tensor: holes mid-grey, pad image and mask together, run, crop.
        height, width = image.shape[-2:]
        if mask is not None:
            image = image * (1 - mask)
            packed = _pad_to_stride(torch.cat([image, mask], 1), stride)
            image, mask = packed[:, :channels], packed[:, channels:]
        else:
            image = _pad_to_stride(image, stride)
        return run_generator(net, image, mask, labels)[..., :height * scale, :width * scale]

    base = max(shape["resolution"] // scale, stride, 4)
    sides = ("height", "width") if scale == 1 else (f"{scale}*height", f"{scale}*width")
    return Graph(net, fn, inputs, "images", ("batch", shape["channels"], *sides), "editing",
                 {"batch": EXAMPLE_BATCH, "height": base + 1, "width": base + 2},
                 [{"batch": 1, "height": base, "width": base},
                  {"batch": 3, "height": base + 5, "width": base + 11}],
                 {"stride": stride, "scale": scale, "min_size": stride, "mask": "1 = hole" if shape.get("mask") else "none"})


def _translation(net: nn.Module, meta: dict, direction: str) -> Graph:
    one_way = net.ab if direction == "a2b" else net.ba
    stride, channels = net.stride, meta["shape"]["channels"]
    inputs = [Input("image", ("batch", channels, "height", "width"), "uniform")]

    def fn(net, image):
        # As TrainedTranslator.translate_tensor: pad, run one direction, clamp, crop.
        height, width = image.shape[-2:]
        return net(_pad_to_stride(image, stride)).float().clamp(-1, 1)[..., :height, :width]

    base = max(meta["shape"]["resolution"], stride)
    return Graph(one_way, fn, inputs, "images", ("batch", channels, "height", "width"), "translation",
                 {"batch": EXAMPLE_BATCH, "height": base + 1, "width": base + 2},
                 [{"batch": 1, "height": base, "width": base},
                  {"batch": 3, "height": base + 5, "width": base + 11}],
                 {"direction": direction, "stride": stride, "min_size": stride})


def _classifier(net: nn.Module, meta: dict) -> Graph:
    shape = meta["shape"]
    inputs = [Input("images", ("batch", shape["channels"], shape["resolution"], shape["resolution"]), "uniform")]
    return Graph(net, lambda net, images: net(images), inputs, "logits", ("batch", shape["num_classes"]),
                 "classifier",
                 {"batch": EXAMPLE_BATCH}, [{"batch": b} for b in CHECK_BATCHES],
                 {"class_names": meta.get("class_names", [])})


def build_graph(run_dir: str | Path, checkpoint_name: str = "last", direction: str | None = None,
                tileable: bool = False, fixed_noise: bool = False) -> tuple[Graph, dict]:
    """The network of a run (its EMA copy where there is one) and the graph to export.
    Returns (graph, checkpoint header)."""
    meta = checkpoint.read_meta(find_checkpoint(run_dir, checkpoint_name))
    classifier = meta.get("sample_net") is None
    net, meta = rebuild(run_dir, checkpoint_name, "C" if classifier else None)
    net.eval().requires_grad_(False)
    translation = hasattr(net, "translate")
    if direction is not None and not translation:
        raise ConfigError(f"--direction {direction}: only translation runs have directions")
    texture = hasattr(net, "tileable") and not meta["shape"].get("in_channels")
    if tileable and not texture:
        raise ConfigError("--tileable: only texture (spatial) runs can be exported tileable")
    if fixed_noise and not hasattr(net, "synthesis"):
        raise ConfigError("--fixed-noise: only stylegan generators have noise maps")
    if classifier:
        return _classifier(net, meta), meta
    if translation:
        return _translation(net, meta, check_direction(direction or "a2b")), meta
    if meta["shape"].get("in_channels"):
        return _editing(net, meta), meta
    if texture:
        return _texture(net, tileable), meta
    if not hasattr(net, "latent_dim"):
        raise ConfigError(f"run {str(run_dir)!r}: model {meta['config']['model']['name']!r} is neither a "
                          f"generator, an editor, a translator nor a classifier")
    return _generation(net, fixed_noise), meta


# Export and verification.
def _trace(graph: Graph, opset: int | None):
    """torch.onnx.export (the dynamo exporter) with every named axis dynamic."""
    from torch.export import Dim

    axes = {name: Dim(name, min=2) for name in graph.example}
    example = tuple(i.make(graph.example, torch.Generator().manual_seed(0)) for i in graph.inputs)
    dynamic = tuple({k: axes[d] for k, d in enumerate(i.dims) if isinstance(d, str)} or None
                    for i in graph.inputs)
    wrapper = _Wrapper(graph).eval()
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        # The exporter reports progress on stdout and notes as warnings and log lines; the
        # outcome is checked below (opset written, onnxruntime against PyTorch) instead.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            program = torch.onnx.export(wrapper, example, dynamo=True, opset_version=opset,
                                        input_names=[i.name for i in graph.inputs],
                                        output_names=[graph.output], dynamic_shapes=(dynamic,))
    except Exception as error:  # the exporter's errors are pages long: name the root cause
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        first = next((line for line in str(cause).splitlines() if line.strip()), "")
        raise ExportError(f"torch.onnx.export failed for this {graph.kind} network "
                          f"({type(cause).__name__}: {first.strip()})") from error
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return program.model_proto


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.inference_mode()
def verify(session, graph: Graph, seed: int = 0) -> tuple[float, list[dict]]:
    """Run the ONNX graph (an onnxruntime session) and the graph in PyTorch on the same random
    inputs at each of `graph.checks`; returns the largest absolute difference and one row per
    check."""
    feeds = {i.name for i in session.get_inputs()}
    wrapper = _Wrapper(graph).eval()
    generator = torch.Generator().manual_seed(seed)
    worst, rows = 0.0, []
    for sizes in graph.checks:
        tensors = [i.make(sizes, generator) for i in graph.inputs]
        expected = wrapper(*tensors).float().numpy()
        got = session.run(None, {i.name: t.numpy() for i, t in zip(graph.inputs, tensors) if i.name in feeds})[0]
        if got.shape != expected.shape:
            raise ExportError(f"the ONNX graph gave {got.shape} for inputs of {sizes}, PyTorch {expected.shape}")
        diff = float(np.abs(got - expected).max()) if expected.size else 0.0
        worst = max(worst, diff)
        rows.append({**sizes, "output": list(expected.shape), "max_abs_diff": diff})
    return worst, rows


def _describe(values) -> list[dict]:
    """onnxruntime's inputs or outputs as name, shape (named dynamic axes) and numpy dtype name."""
    names = {"float": "float32", "double": "float64"}
    types = [v.type.removeprefix("tensor(").removesuffix(")") for v in values]
    return [{"name": v.name, "shape": [d if isinstance(d, int) else str(d) for d in v.shape],
             "type": names.get(t, t)} for v, t in zip(values, types)]


def default_path(run_dir: str | Path, graph: Graph, checkpoint_name: str = "last") -> Path:
    """RUN/export/<net>[-<direction>][-tileable][-<checkpoint>].onnx"""
    parts = ["C" if graph.kind == "classifier" else "G"]
    if graph.kind == "translation":
        parts.append(graph.notes["direction"])
    if graph.notes.get("tileable"):
        parts.append("tileable")
    if graph.notes.get("noise") == "fixed":
        parts.append("fixed-noise")
    if checkpoint_name != "last":
        parts.append(Path(checkpoint_name).stem if checkpoint_name.endswith(".safetensors") else checkpoint_name)
    return Path(run_dir) / "export" / ("-".join(parts) + ".onnx")


def export_onnx(run_dir: str | Path, out: str | Path | None = None, checkpoint_name: str = "last",
                direction: str | None = None, opset: int | None = None, atol: float = DEFAULT_ATOL,
                force: bool = False, tileable: bool = False, fixed_noise: bool = False) -> dict:
    """Export a run's network to ONNX and check it against PyTorch with onnxruntime.

    Args:
        run_dir: a run directory written by `ganforge train`.
        out: the .onnx file to write [default: RUN/export/G.onnx, G-a2b.onnx, C.onnx, ...].
        checkpoint_name: 'last', 'best', 'step-000500', or a .safetensors path.
        direction: translation runs: 'a2b' (default) or 'b2a'.
        opset: ONNX opset [default: the exporter's].
        atol: the largest absolute difference from PyTorch allowed; beyond it nothing is written.
        force: replace an existing file.
        tileable: texture runs: circular padding, so a field makes an image that wraps.
        fixed_noise: stylegan: keep the run's fixed noise maps (what `ganforge sample` uses)
            instead of taking the noise as inputs.

    Returns a dict: path, kind, inputs and outputs (name, shape with named dynamic axes,
    type), max_abs_diff, checks (one row per verified size), opset, step.

    Example:
        >>> report = export_onnx("runs/demo")
        >>> report["path"], report["max_abs_diff"]
        ('runs/demo/export/G.onnx', 2.4e-07)
    """
    if not atol >= 0:
        raise ConfigError(f"--atol {atol:g}: must be >= 0")
    if opset is not None and opset < 7:
        raise ConfigError(f"--opset {opset}: must be at least 7")
    graph, meta = build_graph(run_dir, checkpoint_name, direction, tileable, fixed_noise)
    path = Path(out) if out is not None else default_path(run_dir, graph, checkpoint_name)
    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {str(path)!r}: give a .onnx file")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite")

    import onnx

    model = _trace(graph, opset)
    written_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written_opset != opset:
        raise ExportError(f"--opset {opset}: the exporter wrote opset {written_opset}; try 18 or later")
    config = meta["config"]
    notes = {"kind": graph.kind, "model": config["model"]["name"], "task": config.get("task", ""),
             "step": meta.get("step", 0), "output_range": "[-1, 1]" if graph.output == "images" else "logits",
             **graph.notes}
    for dim, name in zip(model.graph.output[0].type.tensor_type.shape.dim, graph.output_dims):
        if isinstance(name, str):
            dim.dim_param = name
        else:
            dim.dim_value = name
    for key, value in notes.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"ganforge.{key}", value if isinstance(value, str) else json.dumps(value)
    model.doc_string = f"ganforge {graph.kind} network of run {Path(run_dir).name} at step {meta.get('step', 0)}"
    with replacing(path) as tmp:
        onnx.save_model(model, str(tmp))
        session = _session(tmp)
        worst, rows = verify(session, graph)
        if not worst <= atol:
            raise ExportError(f"max abs difference vs PyTorch: {worst:.3g} exceeds --atol {atol:g}; "
                              f"nothing written")
        inputs, outputs = _describe(session.get_inputs()), _describe(session.get_outputs())
        del session   # closes the file before the rename
    return {"path": str(path), "kind": graph.kind, "model": notes["model"], "step": notes["step"],
            "inputs": inputs, "outputs": outputs, "max_abs_diff": worst, "checks": rows,
            "opset": written_opset, "atol": atol, "notes": graph.notes}
