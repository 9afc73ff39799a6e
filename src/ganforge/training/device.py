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


def pick_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """fp32 unless asked; auto gives bf16 on CUDA GPUs that support it, else fp16 on CUDA."""
    choice = config.precision
    if choice == "auto":
        if device.type == "cuda":
            choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
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
