"""Where training numbers go: metrics.jsonl, TensorBoard (when installed), the console."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config import LogConfig
from ..errors import ConfigError


class Logger:
    def __init__(self, run_dir: Path, config: LogConfig, total_steps: int, start_step: int,
                 enabled: bool = True, budget_s: float | None = None):
        """`enabled` is false on all but one process of a distributed run: they log nothing.
        A run bound by its time budget alone (`budget_s`, no step total) gets a bar over the
        budget's seconds, so it still shows how long is left."""
        self.enabled = enabled
        self.file = self.tb = self.bar = None
        self.console = False
        # A budget-bound run (train.steps = resolve.BUDGET_STEPS) has no step total to show.
        self.by_time = total_steps >= 10**12 and budget_s is not None
        self.step = start_step
        if not enabled:
            return
        self.path = run_dir / "metrics.jsonl"
        self._truncate_after(start_step)
        self.file = open(self.path, "a", encoding="utf-8")
        self.tb = self._tensorboard(run_dir / "tb", config.tensorboard)
        self.bar = None
        self.console = config.progress
        if config.progress and sys.stderr.isatty():
            from tqdm import tqdm
            if self.by_time:
                self.bar = tqdm(total=round(budget_s), unit="s", dynamic_ncols=True,
                                desc=f"step {start_step}",
                                bar_format="{desc} |{bar}| {n:.0f}/{total:.0f} s [{remaining} left{postfix}]")
            else:
                total = None if total_steps >= 10**12 else total_steps
                self.bar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        """On resume, drop lines the crashed run wrote after its last checkpoint."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if record.get("step", 0) <= step:
                kept.append(line)
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    @staticmethod
    def _tensorboard(folder: Path, choice: str):
        if choice == "no":
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if choice == "yes":
                raise ConfigError("log.tensorboard=yes but tensorboard is not installed "
                                  "(pip install tensorboard)") from None
            return None
        return SummaryWriter(str(folder))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])
        shown = {k: v for k, v in record.items() if k not in ("step", "elapsed_s")}
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
        elif self.console:
            print(f"step {record['step']}: {text}", flush=True)

    def event(self, message: str) -> None:
        """A one-off line (resumed, stopped early, saved) on the console."""
        if self.bar is not None:
            self.bar.write(message)
        elif self.console:
            print(message, flush=True)

    def advance(self, steps: int = 1, seconds: float | None = None) -> None:
        """`steps` more done; `seconds` the run has trained over all its starts, of its
        budget (the bar of a run bound by its budget moves with time)."""
        self.step += steps
        if self.bar is None:
            return
        if self.by_time and seconds is not None:
            self.bar.set_description_str(f"step {self.step}", refresh=False)
            self.bar.update(min(seconds, self.bar.total) - self.bar.n)
        elif not self.by_time:
            self.bar.update(steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.file is not None:
            self.file.close()
