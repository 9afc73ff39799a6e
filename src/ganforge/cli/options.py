"""Argument types shared by the commands, so one bad value is one line naming it (exit 2)."""
from __future__ import annotations

import argparse

from ..errors import ConfigError


def device(text: str) -> str:
    """--device: a device this machine has (auto: CUDA, else MPS, else the CPU), as torch names it."""
    from ..training.device import pick_device   # imports torch: only when a command is parsed
    try:
        return str(pick_device(text, key=""))
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
