"""Device, precision and memory-layout choices, made once from the config."""
from __future__ import annotations

import contextlib

import torch

from ..config import TrainConfig
from ..errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name!r}: MPS is not available on this machine")
    return device


def cpu_has_bf16_units() -> bool:
    """AVX512-BF16 or AMX: the CPU multiplies bf16 natively (about 2.3x its fp32 rate on this
    project's machine). Elsewhere bf16 is emulated and no faster than fp32."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None),
              getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check() for check in checks if check is not None)


def pick_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """auto gives bf16 on CUDA GPUs that support it, else fp16 on CUDA; on the CPU bf16
    where it has bf16 units, else fp32."""
    choice = config.precision
    if choice == "auto":
        if device.type == "cuda":
            choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and cpu_has_bf16_units():
            choice = "bf16"
        else:
            choice = "fp32"
    if choice == "fp16" and device.type != "cuda":
        raise ConfigError(f"train.precision=fp16 needs a CUDA device (device is {device.type}); "
                          f"use bf16 or fp32")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed-precision context for the forward passes, or nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """channels_last (NHWC) speeds up convolutions on CUDA and on CPU (oneDNN) alike."""
    if config.channels_last == "auto":
        return device.type in ("cuda", "cpu")
    return config.channels_last == "yes"


def adam_options(config: TrainConfig, device: torch.device) -> dict:
    """Adam's implementation: `fused` (one kernel over all parameters; CUDA, and CPU from
    PyTorch 2.4), `foreach` (a few batched kernels) or `loop` (one parameter at a time, the
    textbook code). auto takes fused where this PyTorch has it, else foreach."""
    choice = config.optimizer_impl
    if choice in ("auto", "fused"):
        try:
            torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
            return {"fused": True}
        except (RuntimeError, TypeError) as error:
            if choice == "fused":
                raise ConfigError(f"train.optimizer_impl=fused: not available for {device.type} in "
                                  f"PyTorch {torch.__version__} ({error}); use foreach") from None
            choice = "foreach"
    return {"foreach": choice == "foreach"}


def use_compile(config: TrainConfig, device: torch.device, double_backward: bool) -> bool:
    """Whether to torch.compile the networks. Gradient penalties (WGAN-GP, R1) differentiate D
    twice, which compiled graphs do not support, so auto leaves those runs eager."""
    choice = config.compile
    if choice == "yes" and double_backward:
        raise ConfigError("train.compile=yes: this objective differentiates twice (gradient penalty "
                          "or R1), which torch.compile does not support; set train.compile=no")
    if choice == "auto":
        return device.type == "cuda" and not double_backward
    return choice == "yes"


def compiled(net: torch.nn.Module) -> torch.nn.Module:
    """`net` compiled, falling back to eager execution (with a warning) where compilation is
    not possible: no C++ compiler, an unsupported Python, an operation dynamo cannot trace."""
    import warnings

    try:
        import torch._dynamo
        torch._dynamo.config.suppress_errors = True  # a graph that fails to compile runs eagerly
        # Progressive growing makes a graph per stage and fade (10 at 32 px): above the default limit of 8.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        return torch.compile(net)
    except Exception as error:  # noqa: BLE001 - any failure here means: run eagerly
        warnings.warn(f"torch.compile is not available here ({error}); training runs eagerly")
        return net
