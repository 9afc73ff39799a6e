"""Differentiable augmentation (DiffAugment) and its adaptive strength (ADA) for small data sets.

With a few thousand images the discriminator memorises the real set and the generator's
gradients turn to noise. Augmenting every image the discriminator sees, real and fake alike,
stops the memorising; because the ops are differentiable the generator still gets gradients
through them, and because they are applied to both sides the generator does not learn to
produce augmented images (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training"). `AdaptiveAugment` tunes how often they are applied from a measure of
over-fitting, E[sign(D(real))] (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data").

All ops take float batches N x C x H x W in [-1, 1], return a new tensor of the same shape,
dtype and device, draw all randomness from their `generator` (None = the global RNG of the
batch's device) and never write into their input. A process that holds one `shard` of a
batch split over several processes (data-parallel training) draws the whole batch's random
numbers and keeps its own slice, so the split changes no image's augmentation, and the
processes, which share a seed, do not all augment alike. "Zero" (translation padding, cutout) means
the value 0.0, mid-grey in [-1, 1]. `color` does not clamp: clamping would cut gradients.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..errors import CheckpointError, ConfigError
from ..registry import suggest

Shard = tuple[int, int]            # (index, count): this process's part of a batch split evenly
WHOLE: Shard = (0, 1)
Reduce = Optional[Callable[[torch.Tensor], torch.Tensor]]  # sums a tensor over processes


# --------------------------------------------------------------------------- randomness

def _device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    """Where to draw: on the generator's device if one is given (so a CPU generator gives the
    same numbers for CPU and CUDA batches), else on the batch's device."""
    return x.device if generator is None else generator.device


def _slice(draw: torch.Tensor, n: int, shard: Shard) -> torch.Tensor:
    """Shard `index` of `count`: the n values of this process out of a draw for all of them."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {shard}: need 0 <= index < count")
    return draw[index * n:(index + 1) * n] if count > 1 else draw


def _rand(x: torch.Tensor, n: int, generator: torch.Generator | None,
          shard: Shard = WHOLE) -> torch.Tensor:
    """n uniform floats in [0, 1) on x's device, in x's dtype."""
    draw = torch.rand(n * shard[1], generator=generator, device=_device(x, generator))
    return _slice(draw, n, shard).to(device=x.device, dtype=x.dtype)


def _randint(x: torch.Tensor, low: int, high: int, n: int,
             generator: torch.Generator | None, shard: Shard = WHOLE) -> torch.Tensor:
    """n integers in [low, high) on x's device."""
    draw = torch.randint(low, high, (n * shard[1],), generator=generator, device=_device(x, generator))
    return _slice(draw, n, shard).to(x.device)


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """Shape (N,) -> (N, 1, 1, 1), to broadcast one value per sample."""
    return values.view(-1, 1, 1, 1)


def _span(size: int, fraction: float) -> int:
    """round(size * fraction), half up, as the DiffAugment reference does."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return int(size * fraction + 0.5)


# --------------------------------------------------------------------------- ops

def translate(x: torch.Tensor, fraction: float = 0.125, *,
              generator: torch.Generator | None = None, shard: Shard = WHOLE) -> torch.Tensor:
    """Shift each image by its own integer offset, filling the uncovered border with 0.

    Offsets are uniform in [-s, s] per axis, s = round(fraction * size). Pixels shifted out
    of the frame are dropped. Differentiable (a gather from a zero-padded copy).

    Args:
        x: float images N x C x H x W.
        fraction: largest shift as a fraction of the height (resp. width).
        generator: source of the offsets; None = global RNG.
        shard: (index, count) when x is one of `count` equal parts of a batch.

    Example:
        >>> translate(torch.zeros(4, 3, 32, 32)).abs().sum()   # zeros stay zero
        tensor(0.)
    """
    n, c, h, w = x.shape
    shift_h, shift_w = _span(h, fraction), _span(w, fraction)
    dy = _randint(x, -shift_h, shift_h + 1, n, generator, shard)
    dx = _randint(x, -shift_w, shift_w + 1, n, generator, shard)
    # Output pixel i reads padded input pixel i - d + 1; indices outside the image land on
    # the one-pixel zero border once clamped, so the image moves by +d.
    rows = (torch.arange(h, device=x.device) - dy[:, None] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device) - dx[:, None] + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def cutout(x: torch.Tensor, fraction: float = 0.5, *,
           generator: torch.Generator | None = None, shard: Shard = WHOLE) -> torch.Tensor:
    """Set one square of side round(fraction * size) per image to 0 (mid-grey).

    The square lies wholly inside the image at a uniformly random position (the DiffAugment
    reference instead centres it anywhere and lets the border clip it), so every sample
    loses exactly the same area.

    Args:
        x: float images N x C x H x W.
        fraction: side of the square as a fraction of the height (resp. width).
        generator: source of the positions; None = global RNG.
        shard: (index, count) when x is one of `count` equal parts of a batch.

    Example:
        >>> (cutout(torch.ones(2, 1, 8, 8)) == 0).sum().item()   # two 4 x 4 squares
        32
    """
    n, _, h, w = x.shape
    side_h, side_w = _span(h, fraction), _span(w, fraction)
    top = _randint(x, 0, h - side_h + 1, n, generator, shard)
    left = _randint(x, 0, w - side_w + 1, n, generator, shard)
    rows = torch.arange(h, device=x.device) - top[:, None]
    cols = torch.arange(w, device=x.device) - left[:, None]
    in_rows = (rows >= 0) & (rows < side_h)
    in_cols = (cols >= 0) & (cols < side_w)
    box = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill(box, 0.0)


def flip(x: torch.Tensor, *, generator: torch.Generator | None = None,
         shard: Shard = WHOLE) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5.

    Args:
        x: float images N x C x H x W.
        generator: source of the coin flips; None = global RNG.
        shard: (index, count) when x is one of `count` equal parts of a batch.

    Example:
        >>> flip(torch.randn(8, 3, 16, 16)).shape
        torch.Size([8, 3, 16, 16])
    """
    heads = _per_sample(_rand(x, x.shape[0], generator, shard) < 0.5)
    return torch.where(heads, x.flip(-1), x)


def color(x: torch.Tensor, *, generator: torch.Generator | None = None,
          shard: Shard = WHOLE) -> torch.Tensor:
    """Random brightness, saturation and contrast per image, as in the DiffAugment reference.

    In order: add b ~ U[-0.5, 0.5); scale the distance from the channel mean by s ~ U[0, 2)
    (a no-op for one channel or for gray RGB); scale the distance from the image mean by
    c ~ U[0.5, 1.5). Values may leave [-1, 1]; they are not clamped.

    Args:
        x: float images N x C x H x W (any C).
        generator: source of the factors; None = global RNG.
        shard: (index, count) when x is one of `count` equal parts of a batch.

    Example:
        >>> color(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """
    n = x.shape[0]
    brightness = _per_sample(_rand(x, n, generator, shard) - 0.5)
    saturation = _per_sample(_rand(x, n, generator, shard) * 2.0)
    contrast = _per_sample(_rand(x, n, generator, shard) + 0.5)
    x = x + brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * saturation + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


AUGMENTS: dict[str, Callable[..., torch.Tensor]] = {
    "translation": translate,
    "cutout": cutout,
    "flip": flip,
    "color": color,
}


# --------------------------------------------------------------------------- policy

def parse_policy(policy: list[str] | str) -> list[str]:
    """Op names from "translation,cutout" (or a list), checked against `AUGMENTS`.

    Raises:
        ConfigError: for a name not in `AUGMENTS`, listing the valid ones.

    Example:
        >>> parse_policy("translation, cutout")
        ['translation', 'cutout']
    """
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [name.strip() for name in names if name.strip()]
    for name in names:
        if name not in AUGMENTS:
            raise ConfigError(f"unknown augmentation {name!r}{suggest(name, AUGMENTS)}; "
                              f"valid: {', '.join(sorted(AUGMENTS))}")
    return names


def augment(x: torch.Tensor, policy: list[str] | str, p: float,
            generator: torch.Generator | None = None, shard: Shard = WHOLE) -> torch.Tensor:
    """Apply each op of `policy` in turn, to each sample independently with probability p.

    Every op is computed for the whole batch and kept per sample by a mask, so gradients
    flow to x through both the augmented and the untouched samples. p = 0 returns x itself.

    Args:
        x: float images N x C x H x W in [-1, 1].
        policy: op names, a list or a comma-separated string (see `AUGMENTS`).
        p: probability in [0, 1] that a sample goes through each op.
        generator: source of all randomness; None = global RNG.
        shard: (index, count) when x is this process's equal part of a batch split over
            `count` processes that share a seed: the result is that part of what one
            process would make of the whole batch.

    Example:
        >>> out = augment(torch.randn(16, 3, 32, 32), "translation,cutout", p=0.5)
        >>> images = torch.randn(16, 3, 32, 32)
        >>> whole = augment(images, "translation", 0.5, torch.Generator().manual_seed(0))
        >>> part = augment(images[8:], "translation", 0.5, torch.Generator().manual_seed(0), shard=(1, 2))
        >>> torch.equal(part, whole[8:])
        True
    """
    names = parse_policy(policy)
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augmentation probability must be in [0, 1], got {p}")
    if p == 0.0:
        return x
    for name in names:
        augmented = AUGMENTS[name](x, generator=generator, shard=shard)
        if p >= 1.0:
            x = augmented
        else:
            chosen = _per_sample(_rand(x, x.shape[0], generator, shard) < p)
            x = torch.where(chosen, augmented, x)
    return x


# --------------------------------------------------------------------------- ADA

class AdaptiveAugment:
    """The ADA controller: raises p while the discriminator over-fits, lowers it otherwise.

    Over-fitting is measured as r_t = E[sign(D(real))] over the last `interval` steps; r_t
    near 1 means D is sure of every real image. Every `interval` steps p moves by
    sign(r_t - target) * batch_size * interval / speed_images, clamped to [0, max_p].
    `observe` wants logits whose sign is D's verdict (for a loss whose verdict turns at
    another value, shift them first: `GANLoss.real_score`).

    Data-parallel training passes `update` a `reduce` that sums over the processes, and the
    global batch size: every process then sees the same r_t over the whole batch and applies
    the same p, which moves as fast as in one process with that batch (StyleGAN2-ADA does
    the same).

    Args:
        target: the r_t to hold (0.6 in the paper).
        speed_images: images for p to go from 0 to 1 (500k in the paper).
        interval: steps between adjustments.
        p: initial probability.
        max_p: ceiling for p.

    Example:
        >>> ada = AdaptiveAugment()
        >>> for step in range(steps):
        ...     ada.observe(d_real_logits)          # no host sync
        ...     ada.update(batch_size)               # p changes every 4th call
        ...     images = augment(images, "translation,cutout", ada.p)
    """

    def __init__(self, target: float = 0.6, speed_images: int = 500_000, interval: int = 4,
                 p: float = 0.0, max_p: float = 1.0):
        if not 0.0 <= max_p <= 1.0 or not 0.0 <= p <= max_p:
            raise ConfigError(f"need 0 <= p <= max_p <= 1, got p={p}, max_p={max_p}")
        if speed_images <= 0 or interval < 1:
            raise ConfigError(f"speed_images must be > 0 and interval >= 1, "
                              f"got {speed_images} and {interval}")
        self.target = float(target)
        self.speed_images = speed_images
        self.interval = int(interval)
        self.max_p = float(max_p)
        self._p = float(p)
        self._step = 0
        self._reset()

    @property
    def p(self) -> float:
        """The current augmentation probability."""
        return self._p

    def _reset(self) -> None:
        self._sign_sum: torch.Tensor | float = 0.0
        self._count = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        """Add the discriminator's logits on real images to the running mean, on device."""
        self._sign_sum = self._sign_sum + real_logits.detach().sign().sum(dtype=torch.float32)
        self._count += real_logits.numel()

    def _totals(self, reduce: Reduce) -> tuple[float, int]:
        """The accumulated sign sum and count, summed over processes by `reduce` (a host sync)."""
        if reduce is None:
            return float(self._sign_sum), self._count
        sign_sum = torch.as_tensor(self._sign_sum, dtype=torch.float32)
        stats = reduce(torch.stack([sign_sum, torch.tensor(float(self._count), device=sign_sum.device)]))
        sign_sum, count = stats.tolist()
        return sign_sum, int(round(count))

    def update(self, batch_size: int, reduce: Reduce = None) -> float | None:
        """Count one step; on every `interval`-th, adjust p and return r_t, else return None.

        An adjustment step with nothing observed leaves p as it is and returns None.

        Args:
            batch_size: images per step, over all processes when `reduce` is given.
            reduce: sums a tensor over the processes (e.g. `distributed.sum_over_ranks`);
                every process must then call `update` alike. None: this process alone.
        """
        self._step += 1
        if self._step % self.interval != 0:
            return None
        sign_sum, count = self._totals(reduce)   # the only host sync
        self._reset()
        if count == 0:
            return None
        r_t = sign_sum / count
        direction = (r_t > self.target) - (r_t < self.target)
        step = direction * batch_size * self.interval / self.speed_images
        self._p = min(max(self._p + step, 0.0), self.max_p)
        return r_t

    def state_dict(self, reduce: Reduce = None) -> dict[str, float | int]:
        """p, the step counter and the accumulators as plain numbers (JSON-safe); with
        `reduce` (as in `update`), the accumulators summed over all processes."""
        sign_sum, count = self._totals(reduce)
        return {"p": self._p, "step": self._step, "sign_sum": sign_sum, "count": count}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore what `state_dict` saved; the settings stay those of the constructor."""
        missing = {"p", "step", "sign_sum", "count"} - set(state)
        if missing:
            raise CheckpointError(f"augmentation state lacks {', '.join(sorted(missing))}")
        self._p = float(state["p"])
        self._step = int(state["step"])
        self._sign_sum = float(state["sign_sum"])
        self._count = int(state["count"])

    def __repr__(self) -> str:
        return (f"AdaptiveAugment(p={self._p:.4f}, target={self.target}, "
                f"interval={self.interval}, speed_images={self.speed_images})")
