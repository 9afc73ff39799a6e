"""The generic training loop: phases from the objective, optimisers, EMA, checkpoints, logs.

It knows no architecture and no loss: for each step it runs the objective's phases, each
of which yields a loss for one network, back-propagates it and steps that network's
optimiser. Everything it holds is saved in one checkpoint, so `--resume` continues the
exact same run: networks, EMA, optimisers, gradient scaler, data order, every rank's random
generators, the health controller's streak and the learning-rate schedule's horizon.

What a resumed run keeps from its first start: the learning-rate schedule (cosine, linear)
runs over the train.steps the run was first started with, so a resume with more --steps
changes no learning rate the shorter run would have used (past that horizon the decayed
rate stays at its end value). A resumed run must see the same data set; one whose size
changed is refused. SIGTERM (what schedulers send before they kill a job) and a first
Ctrl-C finish the step, write a checkpoint and stop, resumable.

Health rollbacks go back to the last checkpoint; a collapse found by a streak (D winning
outright for health.d_win_steps, or a flat D for health.flat_d_steps) goes back to the
checkpoint that was `last` when the streak was first seen, which the loop keeps as `rollback`
while the streak lasts. The objective's defences (augmentation p, regulariser weight) are kept
across a rollback and then strengthened (after a flat D: the regulariser weight relaxed).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import atomic, checkpoint, distributed, rundir
from ..config import Config, dump_yaml
from ..data import load_dataset
from ..data.degrade import parse_degradation
from ..data.domains import is_two_domain
from ..errors import CheckpointError, ConfigError
from ..imageio import grid, save_png, to_hwc
from ..models import MODELS, DataShape, build_models, data_shape
from ..objectives import build_objective
from .batches import Degrader, make_sampler
from .device import (adam_options, autocast, compiled, pick_device, pick_dtype, run_eagerly, use_channels_last,
                     use_compile)
from .diversity import ClassDiversityProbe
from .ema import EMA
from .health import HealthMonitor
from .logger import Logger
from .transfer import freeze, load_init, save_report

# Share of free accelerator memory a data set may take to be kept on the device.
DEVICE_DATA_SHARE = 0.25
# The checkpoint kept while a streak is in progress (see _follow_streak).
ROLLBACK = "rollback"


@dataclass
class Run:
    """Where a finished run lives and how far it got (the API adds `load`)."""

    dir: Path
    step: int
    elapsed_s: float
    stop_reason: str


def stop_status(reason: str) -> str:
    """A stop reason in one word: finished (its steps or time budget), diverged (the health
    controller gave up), or stopped (a signal; resumable)."""
    if reason.startswith("unhealthy"):
        return "diverged"
    return "finished" if reason == "steps done" or reason.startswith("time budget") else "stopped"


class Trainer:
    def __init__(self, config: Config, resume: bool = False, evaluator=None):
        """`evaluator(net) -> dict of scores with 'fid'` runs every log.eval_every steps."""
        self.config, train = config, config.train
        self.evaluator, self.best_fid = evaluator, math.inf
        self.run_dir = Path(config.out)
        self.device = distributed.setup(str(pick_device(train.device)))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = train.cudnn_benchmark
        if train.batch_size % distributed.world_size():
            raise ConfigError(f"train.batch_size={train.batch_size} must divide evenly over "
                              f"{distributed.world_size()} processes (it is the global batch)")
        self.dtype = pick_dtype(train, self.device)
        self.channels_last = use_channels_last(train, self.device)
        torch.manual_seed(train.seed)

        # Load data and build networks before the run directory is touched: bad input fails here.
        data, degradation, self.shape = open_data(config)
        self.class_names = data.class_names
        self.data = self._place(data)
        self.nets = build_models(config.model, self.shape)
        for net in self.nets.values():
            net.to(self.device)
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
        self.objective = checked_objective(config, self.nets, self.shape, data.class_names)
        # train.freeze: before DDP wraps the networks, so it leaves frozen parameters out.
        self.frozen = freeze(train.freeze, self.nets, {phase.net for phase in self.objective.phases})
        # Under torchrun the objective trains through DDP-wrapped networks (same parameters).
        self.train_nets = {name: distributed.wrap(net, self.device, train.sync_batchnorm)
                           for name, net in self.nets.items()}
        self.compiled = use_compile(train, self.device, self.objective.double_backward)
        if self.compiled:
            self.train_nets = {name: compiled(net, name) for name, net in self.train_nets.items()}
        self.objective.use_nets(self.train_nets)
        stepped = dict.fromkeys(phase.net for phase in self.objective.phases)
        self.base_lr = {name: _per_net(train, "lr", name) or train.lr for name in stepped}
        adam = adam_options(train, self.device)
        self.optimizers = {
            name: torch.optim.Adam(self.frozen.trainable(name, self.nets[name]), lr=self.base_lr[name],
                                   betas=tuple(_per_net(train, "betas", name) or (train.beta1, train.beta2)),
                                   **adam)
            for name in stepped}
        self.health, self.lr_scale, self.rollbacks = HealthMonitor(config.health), 1.0, 0
        self._counts, self._counted_since = {}, 0  # per logged value: steps that produced it
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.sampler = make_sampler(self.data, train.batch_size, config.data.resolution, train.seed,
                                    self.channels_last, self.device)
        self.degrader = Degrader(degradation, train.seed)
        self.ema, self.preview_inputs, self.probe = None, None, None
        if self.objective.sample_net is not None:
            sample_net = self.nets[self.objective.sample_net]
            self.ema = EMA(sample_net, train.ema_decay, self.frozen.names.get(self.objective.sample_net, set())) \
                if train.ema_decay > 0 else None
            self.probe = self._diversity_probe(sample_net, data)
            self.preview_inputs = self.objective.preview_inputs(
                sample_net, config.log.grid_size, train.seed + 1,
                lambda k: self.degrader(self.sampler.fixed(k, train.seed + 1), -1))
        self.step, self.elapsed = 0, 0.0
        # The schedule's horizon: this start's train.steps, or on --resume the first start's.
        self.schedule_steps = self._explicit_schedule_steps() or train.steps
        self.notes = list(self.frozen.lines) + self.objective.start_notes(train.steps)  # told when the run starts
        if resume:
            self._restore()  # the run's own weights: train.init_from was for its first start
        else:
            transferred = None
            if train.init_from:  # before the run directory is made: a refusal leaves nothing behind
                transferred = load_init(train.init_from, self.nets, self.ema, self.objective.sample_net,
                                        self.shape, config)
                self.notes = transferred["lines"] + self.notes
            if distributed.is_main():
                self._claim_run_dir()
                if transferred is not None:
                    save_report(self.run_dir, transferred, self.frozen)
            distributed.barrier()
            self.save_checkpoint()  # step 0: a run is resumable, and can roll back, from the start

    # Set-up helpers.
    def _diversity_probe(self, net, data) -> ClassDiversityProbe | None:
        """The per-class diversity probe of a generator drawn from noise (None: health off,
        probes off, or a network that edits images rather than drawing them)."""
        health = self.config.health
        if not (health.enabled and health.diversity_every and self.objective.samples_from_noise):
            return None
        return ClassDiversityProbe(data, getattr(net, "num_classes", 0), net.latent_dim,
                                   seed=self.config.train.seed + 2)

    def _probe_due(self, last_log_step: int) -> bool:
        """A probe on the first log line at or after each multiple of health.diversity_every
        (from that step on: a new network draws alike images before it learns anything)."""
        every = self.config.health.diversity_every
        return self.probe is not None and self.step // every > last_log_step // every

    def _place(self, data):
        """Keep the whole data set on the device when it fits (the fast path); otherwise it
        stays in host memory and the sampler copies each batch to the device."""
        choice = self.config.data.on_device
        fits = True
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            fits = data.nbytes() < DEVICE_DATA_SHARE * free
        if choice == "yes" or (choice == "auto" and fits):
            return data.to(self.device)
        return data

    def _claim_run_dir(self) -> None:
        existing = rundir.checkpoint_path(self.run_dir, "last")
        if existing.exists():
            raise CheckpointError(f"run directory {str(self.run_dir)!r} already holds a run; "
                                  f"continue it with --resume {self.run_dir} or choose another --out")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()

    def _write_config(self) -> None:
        """Rank 0 writes the run's config.yaml; the other ranks read the same config."""
        if distributed.is_main():
            atomic.write_text(self.run_dir / rundir.CONFIG, dump_yaml(self.config))

    # The loop.
    def run(self) -> Run:
        train, log = self.config.train, self.config.log
        budget = train.time_budget   # the run's training seconds over all its starts, as steps count
        if budget is not None and self.elapsed >= budget:
            raise ConfigError(f"train.time_budget={budget:g}: {self.run_dir} has trained {self.elapsed:.1f} s "
                              f"already (the budget counts every start of a run); resume with a larger "
                              f"--time-budget to train on")
        logger = Logger(self.run_dir, log, train.steps, self.step, enabled=distributed.is_main(),
                        budget_s=train.time_budget)
        stop = _StopFlag()
        start, last_log_time, last_log_step = time.perf_counter(), time.perf_counter(), self.step
        self._counts, self._counted_since = {}, self.step
        base_elapsed, sums, reason = self.elapsed, {}, "steps done"
        if self.step:
            logger.event(f"resumed {self.run_dir} at step {self.step}")
        for note in self.notes:
            logger.event(note)
        if train.lr_schedule != "constant" and train.steps > self.schedule_steps:
            logger.event(f"train.lr_schedule={train.lr_schedule} decays over the {self.schedule_steps} "
                         f"steps this run was first started with; steps after {self.schedule_steps} "
                         f"keep its final learning rate (0)")
        try:
            while self.step < train.steps:
                self._train_step(sums)
                self.step += 1
                self.elapsed = base_elapsed + time.perf_counter() - start
                logger.advance(seconds=self.elapsed)
                if budget is not None and self.elapsed >= budget:
                    reason = f"time budget of {budget:g} s spent"
                elif stop.requested:
                    reason = getattr(stop, "reason", "interrupted")  # stand-ins may have only `requested`
                stopping = reason != "steps done"
                if distributed.is_distributed():  # every rank stops at the same step
                    stopping = not distributed.all_agree(not stopping, self.device)
                    if stopping and reason == "steps done":
                        reason = "another process stopped"
                action = None
                if self.step % log.every == 0 or self.step == train.steps or stopping:
                    now = time.perf_counter()
                    sums = distributed.mean_over_ranks(sums)
                    record = self._record(sums, now - last_log_time)
                    if self._probe_due(last_log_step):
                        record.update(self.probe(self.sampling_net()))
                    logger.log(record)
                    streak = self.health.streak_start()
                    action = self.health.check_log(record, self.weights_finite(), last_log_step)
                    if action is None:
                        self._follow_streak(streak)
                    sums, last_log_time, last_log_step = {}, now, self.step
                if action is None and self.step % log.sample_every == 0:
                    self.save_grid()
                if action is None and self.evaluator is not None and self.step % log.eval_every == 0:
                    action = self._evaluate(logger)
                if action is not None:
                    reason = self._recover(action, logger) or reason
                    if reason != "steps done":
                        break
                    sums, last_log_time, last_log_step = {}, time.perf_counter(), self.step
                    self._counts, self._counted_since = {}, self.step
                    continue
                if self.step % log.checkpoint_every == 0 and self.weights_finite():
                    self.save_checkpoint()
                if stopping:
                    break
        finally:
            stop.restore()
        if self.weights_finite() and not reason.startswith("unhealthy"):
            self.save_checkpoint()  # an unhealthy stop keeps the last good checkpoint
            self.save_grid(final=True)
        logger.event(f"stopped at step {self.step} ({reason}); run directory: {self.run_dir}")
        logger.close()
        if distributed.is_main():  # why it stopped, for `ganforge runs` (written last: newer than the log)
            atomic.write_json(self.run_dir / rundir.STATUS, {
                "status": stop_status(reason), "stop_reason": reason, "step": self.step,
                "steps": train.steps, "elapsed_s": round(self.elapsed, 3),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return Run(self.run_dir, self.step, self.elapsed, reason)

    def _record(self, sums: dict, seconds: float) -> dict:
        """One metrics.jsonl line: each value averaged over the steps whose phases produced
        it (lazy phases count only where they ran); images_per_s is batch size x steps per
        second (a step is one update of every network, e.g. one G update)."""
        record = {"step": self.step}
        skipped = {k[len("scaler_skipped_"):]: v.item() for k, v in sums.items()
                   if k.startswith("scaler_skipped_")}
        for key, value in sums.items():
            count = self._counts.get(key, 1)
            if key.startswith("grad_norm_"):  # the mean over the updates the scaler applied
                count -= skipped.get(key[len("grad_norm_"):], 0)
                if count <= 0:
                    continue
            record[key] = round(value.item() / count, 6)
        if self.scaler.is_enabled():
            record["grad_scale"] = self.scaler.get_scale()
        steps = self.step - self._counted_since
        self._counts, self._counted_since = {}, self.step
        images = steps * self.config.train.batch_size
        record["images_per_s"] = round(images / max(seconds, 1e-9), 2)
        record["elapsed_s"] = round(self.elapsed, 3)
        return record

    def _explicit_schedule_steps(self) -> int | None:
        """train.schedule_steps where the config has that key and it is set: a horizon the
        user chose, which wins over the one recorded at the first start."""
        return getattr(self.config.train, "schedule_steps", None)

    def _set_learning_rates(self) -> None:
        """The learning rate is a function of the step, of the schedule's horizon (fixed at the
        first start) and of the health controller's scale, all of which checkpoints keep, so
        resuming needs no scheduler state."""
        train = self.config.train
        progress = min(self.step / max(self.schedule_steps, 1), 1.0)
        progress = max(0.0, progress - train.lr_hold) / (1.0 - train.lr_hold)  # held at the full rate first
        factor = {"constant": 1.0, "linear": 1.0 - progress,
                  "cosine": 0.5 * (1.0 + math.cos(math.pi * progress))}[train.lr_schedule]
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lr[name] * factor * self.lr_scale

    def _follow_schedule(self) -> None:
        """Networks whose form depends on the step (progressive growing) learn it here; the
        schedule is in the model config, so a resumed run is at the same stage."""
        nets = [*self.nets.values(), *([self.ema.shadow] if self.ema is not None else [])]
        for net in nets:
            if hasattr(net, "set_step"):
                net.set_step(self.step)

    def _train_step(self, sums: dict) -> None:
        self._set_learning_rates()
        self._follow_schedule()
        batch, draws = None, 0
        for phase in self.objective.phases:
            if self.step % phase.every:
                continue
            for net_name, net in self.nets.items():
                net.requires_grad_(net_name == phase.net or net_name in phase.graph_of)
            self.frozen.hold()  # train.freeze: no phase trains a frozen parameter
            optimizer = self.optimizers[phase.net]
            for _ in range(phase.repeat):
                if phase.fresh_batch or batch is None:
                    batch = self.degrader(self.sampler.next(), self.step, draws)
                    draws += 1
                values = self._loss_and_backward(phase, batch, optimizer)
                if self.config.health.enabled:
                    self._add_grad_norm(sums, optimizer, phase.net)
                self.scaler.step(optimizer)
                self.scaler.update()
                self.objective.after_step(phase.name)
                for key, value in values.items():
                    value = value.float() / phase.repeat
                    sums[key] = sums[key] + value if key in sums else value
                    self._counts[key] = self._counts.get(key, 0) + 1 / phase.repeat
        if self.ema is not None:
            self.ema.update(self.nets[self.objective.sample_net], self.step)

    def _loss_and_backward(self, phase, batch, optimizer: torch.optim.Optimizer) -> dict:
        """The phase's loss and backward pass (gradients left for the optimizer); its values.

        torch.compile builds a network's backward at its first backward pass, outside the
        forward CompileFallback watches, and it can fail there (on CUDA, PyTorch 2.11's
        inductor mispredicted the memory layout of a transposed convolution's weight gradient:
        pytorch/pytorch#171622). Then every compiled network turns eager, one stderr line each,
        and the phase is computed again, eagerly, from the same batch (with fresh noise: the
        failed pass drew its own). An error the eager pass raises too is the run's own."""
        retry = self.compiled  # run_eagerly says whether a network was still compiled
        while True:
            with autocast(self.device, self.dtype), self._no_sync_outside(phase):
                loss, values = self.objective.loss(phase.name, batch)
            optimizer.zero_grad(set_to_none=True)
            try:
                self.scaler.scale(loss).backward()
                return values
            except Exception as error:  # noqa: BLE001 - re-raised unless a compiled graph is to blame
                if not retry or not run_eagerly(self.train_nets.values(), error):
                    raise
            retry = False

    def _add_grad_norm(self, sums: dict, optimizer: torch.optim.Optimizer, net: str) -> None:
        """Add `net`'s (unscaled) gradient norm to the logged sums, with no host sync.

        Under fp16 the scaler skips an update whose gradients overflowed (it does so on
        purpose while it searches its scale): such a norm is inf or NaN and says nothing of
        the network. It is counted as scaler_skipped_<net> and left out of grad_norm_<net>,
        which averages the updates that were applied.
        """
        self.scaler.unscale_(optimizer)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        else:
            norm = torch.zeros((), device=self.device)
        if self.scaler.is_enabled():
            applied = torch.isfinite(norm)
            key = f"scaler_skipped_{net}"  # a count: no entry in _counts
            sums[key] = sums[key] + (~applied).float() if key in sums else (~applied).float()
            norm = torch.where(applied, norm, torch.zeros_like(norm))
        key = f"grad_norm_{net}"
        sums[key] = sums[key] + norm.float() if key in sums else norm.float()
        self._counts[key] = self._counts.get(key, 0) + 1

    def _no_sync_outside(self, phase) -> contextlib.ExitStack:
        """DDP: networks that neither step nor record a graph in `phase` must not expect a
        gradient reduction (D called in G's phase)."""
        stack = contextlib.ExitStack()
        for name, net in self.train_nets.items():
            if hasattr(net, "no_sync") and name != phase.net and name not in phase.graph_of:
                stack.enter_context(net.no_sync())
        return stack

    def weights_finite(self) -> bool:
        """One host sync: are all network weights finite?"""
        flags = [torch.isfinite(p).all() for net in self.nets.values() for p in net.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    def _recover(self, action, logger) -> str | None:
        """Roll back to the last good checkpoint (for a streak: one from before it began),
        keeping the objective's state, and act on `action`; returns a stop reason when the
        rollbacks allowed are used up."""
        if self.rollbacks >= self.config.health.max_rollbacks:
            logger.log({"step": self.step, "health": action.kind, "reason": action.reason,
                        "action": "stopped: health.max_rollbacks reached"})
            return f"unhealthy ({action.reason}); {self.rollbacks} rollbacks did not help"
        failed_at, scale, rollbacks = self.step, self.lr_scale, self.rollbacks + 1
        defences = self.objective.state_dict()  # what earlier rollbacks strengthened stays
        self._load_state(self._rollback_target(action))
        self.objective.load_state_dict(defences)
        self.lr_scale, self.rollbacks = scale, rollbacks
        self.health.reset()
        if action.kind == "divergence":
            done = None
        elif action.kind == "flat":
            done = self.objective.relax()
        else:
            done = self.objective.strengthen(within_classes=action.within_classes)
        if done is None:
            self.lr_scale *= self.config.health.lr_factor
            done = f"learning rates x{self.lr_scale:g} of the configured ones"
        message = f"rolled back from step {failed_at} to step {self.step}; {done}"
        logger.log({"step": self.step, "health": action.kind, "reason": action.reason, "action": message})
        logger.event(f"health: {action.kind} ({action.reason}): {message}")
        return None

    def _rollback_target(self, action) -> Path:
        """`last`; for a collapse found by a streak, the checkpoint kept when it began."""
        point = rundir.checkpoint_path(self.run_dir, ROLLBACK)
        if action.since is not None and point.is_file():
            return point
        return rundir.checkpoint_path(self.run_dir, "last")

    def _follow_streak(self, before: int | None) -> None:
        """Rank 0, after a log line the health controller took no action on: when a streak
        (D winning outright) has just begun, keep the checkpoint that is `last` now as
        `rollback`, where a collapse at the streak's end goes back to (later checkpoints lie
        inside the streak); with no streak in progress, let it go."""
        if not distributed.is_main():
            return
        point = rundir.checkpoint_path(self.run_dir, ROLLBACK)
        if self.health.streak_start() is None:
            point.unlink(missing_ok=True)
        elif before is None:
            last = rundir.checkpoint_path(self.run_dir, "last")
            with atomic.replacing(point, durable=True) as tmp:
                try:
                    os.link(last, tmp)  # `last` is replaced, never rewritten: the link keeps it
                except OSError:
                    shutil.copyfile(last, tmp)  # file systems without hard links

    def _evaluate(self, logger):
        """Score the sampling network; a new lowest FID also becomes the `best` checkpoint.
        Returns the health controller's Action when the scores show a collapse."""
        scores = self.evaluator(self.sampling_net()) if distributed.is_main() else None
        scores = distributed.broadcast(scores)  # every rank takes the same decision
        record = {"step": self.step, **{f"eval_{k}": round(v, 6) for k, v in scores.items()
                                        if isinstance(v, float)}}
        logger.log(record)
        action = self.health.check_eval(scores)
        if action is not None:
            return action
        if scores["fid"] < self.best_fid:
            self.best_fid = scores["fid"]
            self.save_checkpoint(("best",))
            logger.event(f"step {self.step}: new best FID {scores['fid']:.4g} (checkpoint 'best')")

    # Outputs.
    def sampling_net(self) -> torch.nn.Module:
        return self.ema.shadow if self.ema is not None else self.nets[self.objective.sample_net]

    @torch.no_grad()
    def save_grid(self, final: bool = False) -> None:
        if self.preview_inputs is None or not distributed.is_main():
            return
        net = self.sampling_net()
        was_training = net.training
        net.eval()
        images, nrow = self.objective.preview(net, self.preview_inputs)
        net.train(was_training)
        picture = grid(to_hwc(images), nrow=nrow)
        folder = self.run_dir / rundir.SAMPLES
        save_png(picture, folder / f"step-{self.step:06d}.png")
        if final:
            save_png(picture, folder / "final.png")

    def save_checkpoint(self, names: tuple[str, ...] = ("last",)) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for name, net in self.nets.items():
            tensors.update({f"nets.{name}.{k}": v for k, v in net.state_dict().items()})
        if self.ema is not None:
            tensors.update({f"ema.{self.objective.sample_net}.{k}": v
                            for k, v in self.ema.shadow.state_dict().items()})
        optim = {name: checkpoint.flatten(f"optim.{name}", opt.state_dict(), tensors)
                 for name, opt in self.optimizers.items()}
        sampler_tensors, sampler_meta = self.sampler.state()
        tensors.update(sampler_tensors)
        tensors.update(self._rng_states())
        tensors.update(self._per_rank("objective", self.objective.state_tensors()))
        meta = {
            "step": self.step, "elapsed_s": self.elapsed, "config": self.config.to_dict(),
            "shape": vars(self.shape), "class_names": self.class_names,
            "sample_net": self.objective.sample_net, "has_ema": self.ema is not None,
            "optimizers": optim, "sampler": sampler_meta, "ranks": distributed.world_size(),
            "scaler": checkpoint.flatten("scaler", self.scaler.state_dict(), tensors),
            "best_fid": None if math.isinf(self.best_fid) else self.best_fid,
            "objective": self.objective.state_dict(), "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks, "health": self.health.state_dict(),
            "schedule_steps": self.schedule_steps,
        }
        keep = self.config.log.keep_every
        if "last" in names and keep and self.step % keep == 0:
            names = (*names, f"step-{self.step:06d}")
        if distributed.is_main():
            for name in names:
                checkpoint.save(rundir.checkpoint_path(self.run_dir, name), tensors, meta)
        distributed.barrier()

    def _rng_states(self) -> dict[str, torch.Tensor]:
        """Every rank's random generators (a collective): the CPU generator, and on CUDA this
        rank's device's. Rank 0's go under rng.torch / rng.cuda, rank k's under
        rng.torch.rank{k} / rng.cuda.rank{k}."""
        states = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return self._per_rank("rng", states)

    def _per_rank(self, prefix: str, states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every rank's `states` (a collective): rank 0's under PREFIX.KEY, rank k's under
        PREFIX.KEY.rank{k}."""
        tensors = {}
        for key, state in states.items():
            for k, value in enumerate(distributed.gather_per_rank(state, self.device)):
                tensors[f"{prefix}.{key}" if k == 0 else f"{prefix}.{key}.rank{k}"] = value
        return tensors

    def _own(self, tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        """This rank's part of what `_per_rank` saved under `prefix` (rank 0's where the
        checkpoint has none for this rank), keys without the prefix."""
        k, head = distributed.rank(), prefix + "."
        keys = {name[len(head):] for name in tensors
                if name.startswith(head) and not re.search(r"\.rank\d+$", name)}
        return {key: tensors.get(f"{head}{key}.rank{k}", tensors[f"{head}{key}"]) for key in keys}

    def _restore_rng(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """This rank's generators from a checkpoint; a rank the checkpoint has none for (more
        ranks than it was written by) takes rank 0's."""
        own = self._own(tensors, "rng")
        torch.set_rng_state(own["torch"])
        if self.device.type != "cuda":
            return
        state = own.get("cuda")
        if state is None and meta.get("cuda_rng_states"):  # older checkpoints: rank 0's devices
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            state = tensors.get(f"rng.cuda.{index}")
        if state is not None:
            torch.cuda.set_rng_state(state, self.device)

    def _restore(self) -> None:
        """--resume: check the run is compatible, then load its last checkpoint."""
        path = rundir.find_checkpoint(self.run_dir, "last")
        saved, now = checkpoint.read_meta(path)["config"], self.config.to_dict()
        fixed = [f"data.{k}" for k in ("name", "name_b", "resolution", "channels", "degrade",
                                           "classes", "limit")] + \
            [f"model.{k}" for k in now["model"]] + ["task", "train.freeze"]
        for key in fixed:
            section, _, name = key.rpartition(".")
            was = saved[section].get(name) if section else saved.get(name, "generate")
            now_value = now[section].get(name) if section else now.get(name)
            if section == "data" and name in ("degrade", "name_b"):
                was = was or ""
            if was != now_value:
                raise ConfigError(f"--resume: {key} was {was!r} in this run, now {now_value!r}; a "
                                  f"run continues with the data and networks it started with")
        self._load_state(path)
        self._write_config()

    def _load_state(self, path: Path) -> None:
        """Everything the loop holds, from one checkpoint (resume and health rollbacks)."""
        tensors, meta = checkpoint.load(path)
        for name, net in self.nets.items():
            net.load_state_dict(_strip(tensors, f"nets.{name}."))
        if self.ema is not None and meta.get("has_ema"):
            self.ema.shadow.load_state_dict(_strip(tensors, f"ema.{self.objective.sample_net}."))
        elif self.ema is not None:  # EMA switched on at --resume: average from the restored weights
            self.ema.restart_from(self.nets[self.objective.sample_net])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(checkpoint.unflatten(meta["optimizers"][name], tensors))
            _match_layout(opt)
        self.scaler.load_state_dict(checkpoint.unflatten(meta["scaler"], tensors))
        self.sampler.restore(tensors, meta["sampler"])
        self._restore_rng(tensors, meta)
        self.objective.load_state_tensors(self._own(tensors, "objective"), self.device)
        self.step, self.elapsed = meta["step"], meta["elapsed_s"]
        # Checkpoints from before schedule_steps was recorded: the train.steps they were written with.
        self.schedule_steps = (self._explicit_schedule_steps() or meta.get("schedule_steps")
                               or meta["config"]["train"]["steps"])
        self.best_fid = math.inf if meta.get("best_fid") is None else meta["best_fid"]
        self.objective.load_state_dict(meta.get("objective", {}))
        self.lr_scale, self.rollbacks = meta.get("lr_scale", 1.0), meta.get("rollbacks", 0)
        self.health.load_state_dict(meta.get("health", {}))


def open_data(config: Config):
    """The training split, its degradation (None if none) and the shape the networks are built for."""
    data = load_dataset(config.data, "train")
    degradation = parse_degradation(config.data.degrade) if config.data.degrade else None
    return data, degradation, run_shape(config, data, degradation)


def checked_objective(config: Config, nets: dict, shape: DataShape, class_names):
    """The objective over `nets`, checked against the data's shape and classes (one place for
    training and the dry run, so a check added here reaches both)."""
    objective = build_objective(config.objective, nets)
    objective.check_data(shape)
    objective.check_classes(class_names)
    return objective


def check_build(config: Config) -> str:
    """What a dry run checks beyond the config, on the CPU: the data opens (never downloaded
    here: data.download is off for the check) and the networks and objective build for it, so
    the errors that span keys (an objective option the model cannot take, a model the data
    cannot feed) show before a run starts rather than seconds into it. Returns a one-line
    summary; raises DataError where the data cannot be read, ConfigError where a key is wrong."""
    probe = dataclasses.replace(config, data=dataclasses.replace(config.data, download=False))
    data, _, shape = open_data(probe)
    nets = build_models(config.model, shape)
    objective = checked_objective(config, nets, shape, data.class_names)
    freeze(config.train.freeze, nets, {phase.net for phase in objective.phases})
    sizes = ", ".join(f"{name} {sum(p.numel() for p in net.parameters()):,}" for name, net in nets.items())
    return f"{len(data):,} training images ({data.source}); networks built ({sizes} parameters)"


def run_shape(config: Config, data, degradation) -> DataShape:
    """What the networks are built for: the data's size, channels and classes, and for
    image-to-image models the input the degradation (or the pair's A side) gives them."""
    regions = getattr(data, "region_labels", None) is not None
    classes = len(data.class_names) if regions else data.num_classes
    shape = data_shape(config.model, config.data.resolution, data.channels, classes)
    sources = getattr(data, "sources", None)
    family = MODELS.get(config.model.name).objective
    if is_two_domain(data) or family == "cyclegan":
        return _translation_shape(config, data, shape, degradation)
    editing = family == "image2image"
    if not editing:
        if degradation is not None:
            raise ConfigError(f"data.degrade={config.data.degrade!r}: model {config.model.name!r} "
                              f"generates from noise; degradations feed image-to-image models")
        return shape
    if degradation is None and sources is None:
        raise ConfigError(f"model {config.model.name!r} edits images: set data.degrade (e.g. "
                          f"downscale:4) or use a paired data set (paired:FOLDER)")
    if degradation is not None and sources is not None:
        raise ConfigError(f"data.degrade={config.data.degrade!r}: data set {config.data.name!r} "
                          f"already pairs each image with its input; drop data.degrade")
    if degradation is not None and config.data.resolution % degradation.scale:
        raise ConfigError(f"data.resolution={config.data.resolution}: must be a multiple of the "
                          f"downscale factor {degradation.scale}")
    if degradation is None:
        return DataShape(shape.resolution, shape.channels, shape.num_classes, sources.shape[1])
    return DataShape(shape.resolution, shape.channels, shape.num_classes,
                     degradation.in_channels(data.channels), degradation.scale, degradation.makes_mask)


def _translation_shape(config: Config, data, shape: DataShape, degradation) -> DataShape:
    """Two domains and a translation model go together; the networks map data.channels to
    data.channels (both domains are conformed to them)."""
    if not is_two_domain(data):
        raise ConfigError(f"model {config.model.name!r} translates between two domains, but data set "
                          f"{config.data.name!r} is one; add --dataset-b (data.name_b), or use a folder "
                          f"with trainA/ and trainB/, or styled:BASE")
    if MODELS.get(config.model.name).objective != "cyclegan":
        raise ConfigError(f"data set {data.source!r} holds two domains (A and B) for unpaired "
                          f"translation; train it with --task translate (model cyclegan), not model "
                          f"{config.model.name!r}")
    if degradation is not None:
        raise ConfigError(f"data.degrade={config.data.degrade!r}: unpaired translation takes the two "
                          f"domains as they are; drop data.degrade")
    return DataShape(shape.resolution, shape.channels, 0, shape.channels)


def _per_net(train, key: str, net: str):
    """train.lr_d / train.betas_g ... for the networks G and D; None elsewhere."""
    return getattr(train, f"{key}_{net.lower()}", None) if net in ("G", "D") else None


def _match_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimiser state the memory layout of its parameter (checkpoints hold
    contiguous tensors; channels_last weights need channels_last moments). The fused Adam
    kernel walks parameter and moments as flat memory, so a layout mismatch would pair each
    weight with another weight's moments."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


class _StopFlag:
    """First Ctrl-C, or SIGTERM (what SLURM and other schedulers send before they kill a
    job): finish the step, save, stop ("interrupted" / "terminated"). A second Ctrl-C
    interrupts at once; a second SIGTERM changes nothing (the stop is under way)."""

    REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}

    def __init__(self):
        self.reason: str | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.REASONS}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def _handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.reason = self.REASONS[signum]
        again = " (Ctrl-C again to abort without saving)" if signum == signal.SIGINT else ""
        print(f"\n{self.reason}: stopping after this step with a checkpoint{again}", flush=True)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            if previous is not None:  # None: a handler not installed from Python
                signal.signal(signum, previous)
