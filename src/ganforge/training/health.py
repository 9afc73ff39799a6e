"""The health controller: training watches itself and acts.

It reads what the loop already computes at each log step (losses, gradient norms, whether
the weights are finite, D's accuracy on real and fake images, and every health.diversity_every
steps the per-class diversity probe of training/diversity.py) and the periodic evaluation
(class coverage, sample diversity). On divergence it asks the loop to roll back to the last
good checkpoint and lower the learning rates; on mode collapse, or when D wins outright for
many log steps in a row, or when the samples of some class stay alike (a low per-class
diversity at several probes in a row: a conditional model drawing one shirt per class), to
roll back and strengthen the objective's defences (augmentation
or regulariser weight). When D's verdicts on real and fake images stay alike for many log
steps (a flat D, e.g. flattened by too heavy a regulariser: it gives G nothing to follow and
the samples stop improving), to roll back and relax the objective's regularisers instead.
A decision that ends a streak says when the streak began
(`Action.since`): the loop rolls back to the checkpoint it kept when the streak was first
seen (`streak_start`), not to one written inside the streak.
Every decision comes with its reason, for metrics.jsonl.

Under fp16 the gradient scaler overflows on purpose while it searches its scale: such a
step is skipped (no weight changes) and is not divergence. The loop leaves skipped steps out
of the gradient norms it logs (and counts them as scaler_skipped_<net>); only a scale that
collapses, i.e. gradients that overflow step after step, counts as divergence here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import HealthConfig

# An fp16 gradient scale this small (from 2**16 at the start) means that gradients overflow
# at every step, whatever the scale: divergence that the scaler would otherwise hide.
MIN_GRAD_SCALE = 2.0 ** -16


@dataclass
class Action:
    kind: str        # "divergence", "collapse" or "flat" (D tells real from fake no better than chance)
    reason: str
    since: int | None = None  # a streak: the step it began after; None: seen at once
    within_classes: bool = False  # a collapse inside classes (the diversity probe)


class HealthMonitor:
    def __init__(self, config: HealthConfig):
        self.config = config
        self.d_win_since: int | None = None  # step since which every log line had D winning outright
        self.flat_since: int | None = None   # ... had D's real and fake verdicts alike (a flat D)
        self.low_diversity_since: int | None = None  # step after which every probe was low ...
        self.low_diversity_probes = 0                # ... and how many probes that was

    def check_log(self, record: dict, weights_finite: bool, since_step: int) -> Action | None:
        """Look at one metrics.jsonl record (losses, grad norms, D accuracy) covering the
        steps after `since_step`."""
        cfg = self.config
        if not cfg.enabled:
            return None
        if not weights_finite:
            return Action("divergence", "non-finite values in the network weights")
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                return Action("divergence", f"{key} is {value}")
            if key.startswith("grad_norm") and value > cfg.max_grad_norm:
                return Action("divergence", f"{key}={value:.4g} above health.max_grad_norm={cfg.max_grad_norm:g}")
        scale = record.get("grad_scale")
        if scale is not None and scale < MIN_GRAD_SCALE:
            return Action("divergence", f"grad_scale={scale:.4g}: the fp16 gradient scaler skips "
                                        f"step after step (gradients overflow at any scale)")
        action = self._check_diversity(record.get("class_diversity_min"), since_step)
        if action is not None:
            return action
        step = record["step"]
        if self._streak("d_win_since", record.get("D_accuracy"), lambda a: a >= cfg.d_win_accuracy,
                        since_step, step, cfg.d_win_steps):
            since, self.d_win_since = self.d_win_since, None
            return Action("collapse", f"D_accuracy >= {cfg.d_win_accuracy:g} at every log "
                                      f"line for {cfg.d_win_steps} steps (D wins outright)", since)
        if cfg.flat_d_steps and self._streak("flat_since", record.get("D_margin"),
                                             lambda m: m < cfg.min_d_margin,
                                             since_step, step, cfg.flat_d_steps):
            since, self.flat_since = self.flat_since, None
            return Action("flat", f"D_margin < {cfg.min_d_margin:g} at every log line for "
                                  f"{cfg.flat_d_steps} steps (D's verdicts on real and fake "
                                  f"images alike: it gives G nothing to follow)", since)
        return None

    def _streak(self, attr: str, value, bad, since_step: int, step: int, length: int) -> bool:
        """Follow one streak of log lines whose `value` is `bad` (kept in `attr`: the step it
        began after); True once it is `length` steps long. A line without the value leaves
        the streak as it is."""
        if value is None:
            return False
        if not bad(value):
            setattr(self, attr, None)
        elif getattr(self, attr) is None:
            setattr(self, attr, since_step)
        began = getattr(self, attr)
        return began is not None and step - began >= length

    def _check_diversity(self, diversity: float | None, since_step: int) -> Action | None:
        """A probe's worst-class diversity (None: no probe on this log line)."""
        cfg = self.config
        if diversity is None:
            return None
        if diversity >= cfg.min_class_diversity:
            self.low_diversity_since, self.low_diversity_probes = None, 0
            return None
        if self.low_diversity_since is None:
            self.low_diversity_since = since_step
        self.low_diversity_probes += 1
        if self.low_diversity_probes < cfg.low_diversity_probes:
            return None
        since = self.low_diversity_since
        self.low_diversity_since, self.low_diversity_probes = None, 0
        return Action("collapse", f"class_diversity_min={diversity:.3g} below "
                                  f"health.min_class_diversity={cfg.min_class_diversity:g} at "
                                  f"{cfg.low_diversity_probes} probes in a row (the samples of a "
                                  f"class look alike)", since, within_classes=True)

    def streak_start(self) -> int | None:
        """The step after which the earliest streak in progress began (None: no streak). When
        one begins the loop keeps its last checkpoint, to roll back to should it end in a
        collapse."""
        if not self.config.enabled:
            return None
        starts = [s for s in (self.d_win_since, self.flat_since, self.low_diversity_since) if s is not None]
        return min(starts) if starts else None

    def reset(self) -> None:
        """After a rollback, streaks start again."""
        self.d_win_since, self.flat_since = None, None
        self.low_diversity_since, self.low_diversity_probes = None, 0

    def state_dict(self) -> dict:
        """The streaks in progress, so a resumed run decides as an uninterrupted one would."""
        return {"d_win_since": self.d_win_since, "flat_since": self.flat_since,
                "low_diversity_since": self.low_diversity_since,
                "low_diversity_probes": self.low_diversity_probes}

    def load_state_dict(self, state: dict) -> None:
        self.d_win_since = state.get("d_win_since")
        self.flat_since = state.get("flat_since")
        self.low_diversity_since = state.get("low_diversity_since")
        self.low_diversity_probes = state.get("low_diversity_probes", 0)

    def check_eval(self, scores: dict) -> Action | None:
        """Look at one periodic evaluation (class coverage and diversity of the samples)."""
        cfg = self.config
        if not cfg.enabled:
            return None
        present = scores.get("classes_present")
        if present is not None and present < cfg.min_classes_present:
            return Action("collapse", f"classes_present={present:.3g} below "
                                      f"health.min_classes_present={cfg.min_classes_present:g}")
        diversity = scores.get("diversity_ratio")
        if diversity is not None and diversity < cfg.min_diversity:
            return Action("collapse", f"diversity_ratio={diversity:.3g} below "
                                      f"health.min_diversity={cfg.min_diversity:g}")
        return None
