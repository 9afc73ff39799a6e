"""Device, precision and memory-layout choices, made once from the config; and the oldest
PyTorch these choices work with (`require_torch`)."""
from __future__ import annotations

import contextlib
import re
import sys
from typing import Iterable

import torch

from ..config import TrainConfig
from ..errors import ConfigError


# The oldest releases ganforge runs on (pyproject.toml says the same; a test keeps them equal).
# 2.3 is torch.amp.GradScaler(device); torchvision 0.18 is the release built for torch 2.3.
TORCH_FLOOR = (2, 3)
TORCHVISION_FLOOR = (0, 18)


def require_torch(torch_version: str | None = None, torchvision_version: str | None = None) -> None:
    """Refuse, with one clear line, a PyTorch (or torchvision) older than ganforge uses.

    Meant to run once at `import ganforge`, before an old release fails somewhere deep in a
    run with an AttributeError. torchvision is read from its installed metadata (not
    imported: that is slow); where it is not installed it is not checked.

    Args:
        torch_version: the version to check (default: the running torch's).
        torchvision_version: likewise (default: the installed torchvision's, if any).

    Raises:
        ImportError: a release older than TORCH_FLOOR / TORCHVISION_FLOOR.

    Example:
        >>> require_torch("2.1.2")
        Traceback (most recent call last):
        ImportError: ganforge needs torch>=2.3 (found 2.1.2): ...
    """
    if torch_version is None:
        torch_version = torch.__version__
    if torchvision_version is None:
        from importlib import metadata
        try:
            torchvision_version = metadata.version("torchvision")
        except metadata.PackageNotFoundError:
            torchvision_version = ""
    upgrade = (f"pip install -U 'torch>={_dotted(TORCH_FLOOR)}' "
               f"'torchvision>={_dotted(TORCHVISION_FLOOR)}'")
    found = _release(torch_version)
    if found is not None and found < TORCH_FLOOR:
        raise ImportError(f"ganforge needs torch>={_dotted(TORCH_FLOOR)} (found {torch_version}): "
                          f"it uses torch.amp.GradScaler(device); upgrade with {upgrade}")
    found = _release(torchvision_version)
    if found is not None and found < TORCHVISION_FLOOR:
        raise ImportError(f"ganforge needs torchvision>={_dotted(TORCHVISION_FLOOR)} (found "
                          f"{torchvision_version}), the release for torch>={_dotted(TORCH_FLOOR)}; "
                          f"upgrade with {upgrade}")


def _release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version string such as '2.3.1+cu121' or '2.4.0a0+git1234'."""
    match = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if match else None


def _dotted(release: tuple[int, int]) -> str:
    return ".".join(map(str, release))


def pick_device(name: str, key: str = "train.device") -> torch.device:
    """The device `name` names (auto: CUDA, else MPS, else the CPU); a ConfigError naming
    `key` (if any) for a name torch does not know or a device this machine lacks."""
    named = f"{key}={name!r}" if key else repr(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{named}: not a device (cpu, cuda, cuda:N, mps or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{named}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{named}: MPS is not available on this machine")
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
    """Whether to torch.compile the networks: only when asked (`yes`). Gradient penalties
    (WGAN-GP, R1) differentiate D twice, which compiled graphs do not support."""
    choice = config.compile
    if choice == "yes" and double_backward:
        raise ConfigError("train.compile=yes: this objective differentiates twice (gradient penalty "
                          "or R1), which torch.compile does not support; set train.compile=no")
    if choice == "auto":  # off: slower on an H200 and on the CPU, and PyTorch 2.11's inductor failed
        return False      # the DCGAN's backward (README "Measured speed"); `yes` compiles, with fallbacks
    return choice == "yes"


def compiled(net: torch.nn.Module, name: str = "") -> torch.nn.Module:
    """`net` compiled, falling back to eager execution for this network alone where
    compilation fails: no C++ compiler, an unsupported Python, an operation dynamo cannot trace.

    torch.compile compiles at the first call (and again for each new input shape), so the
    fallback happens there: a call whose compiled form raises runs eagerly instead; when the
    eager call succeeds the network stays eager for good and one line on stderr names it and
    the error. When the eager call raises too, the error is the network's own and is raised.
    Other networks keep their compiled form, and nothing process-wide hides compile errors.

    Args:
        net: the network (or its DistributedDataParallel wrapper) to compile.
        name: how the warning names it (e.g. "D"); default: its class name.

    Example:
        >>> G = compiled(G, "G")   # G(z) runs compiled, or eagerly after one warning
    """
    name = name or type(getattr(net, "module", net)).__name__
    try:
        import torch._dynamo
        # Progressive growing makes a graph per stage and fade (10 at 32 px): above the default limit of 8.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        return CompileFallback(torch.compile(net), net, name)
    except Exception as error:  # noqa: BLE001 - any failure here means: run eagerly
        _warn_eager(name, error)
        return net


class CompileFallback(torch.nn.Module):
    """A compiled network that turns into its eager self at the first compile failure.

    Attribute reads (latent_dim, no_sync, ...) answer from the eager network, whose
    parameters are the compiled one's.
    """

    def __init__(self, compiled_net, eager: torch.nn.Module, name: str):
        super().__init__()
        self.eager = eager
        self.__dict__["compiled_net"] = compiled_net  # not a submodule: no second state_dict entry
        self.__dict__["net_name"] = name

    @property
    def is_compiled(self) -> bool:
        return self.__dict__["compiled_net"] is not None

    def forward(self, *args, **kwargs):
        compiled_net = self.__dict__["compiled_net"]
        if compiled_net is None:
            return self.eager(*args, **kwargs)
        try:
            return compiled_net(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - told apart from the network's own errors below
            failure = error
        out = self.eager(*args, **kwargs)  # raises here when the network itself is at fault
        self.__dict__["compiled_net"] = None
        _warn_eager(self.net_name, failure)
        return out

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "eager":  # not set up yet (copying, unpickling): nothing to ask
                raise
            return getattr(self.eager, name)


def run_eagerly(nets: Iterable[torch.nn.Module], error: BaseException) -> bool:
    """Turn every compiled network of `nets` eager, one stderr line each; whether there was one.

    For a failure outside the forward pass CompileFallback watches: a compiled backward is
    built at the first backward pass, and its error names no network."""
    found = False
    for net in nets:
        if isinstance(net, CompileFallback) and net.is_compiled:
            net.__dict__["compiled_net"] = None
            _warn_eager(net.net_name, error)
            found = True
    return found


def _warn_eager(name: str, error: BaseException) -> None:
    """One stderr line: which network runs eagerly, and why (the first line of the error)."""
    from .. import distributed

    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    why = type(error).__name__ + (f": {lines[0][:200]}" if lines else "")
    rank = f" (rank {distributed.rank()})" if distributed.world_size() > 1 else ""
    print(f"warning: torch.compile failed for network {name}{rank} ({why}); {name} runs eagerly",
          file=sys.stderr)
