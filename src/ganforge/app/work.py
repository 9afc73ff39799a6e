"""A bounded pool for the studio's CPU-bound work (sampling, editing, reports).

An HTTP server accepts requests faster than a CPU can run networks on them. Every job goes
through one `WorkQueue` of fixed capacity: `workers` threads run jobs and at most `size` more
wait; a job beyond that is refused at once (`QueueFull`, which the server answers with 503)
instead of piling up in memory.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from ..errors import ConfigError, GanforgeError


class QueueFull(GanforgeError):
    """Every worker is busy and the waiting line is full: try again shortly."""


class WorkQueue:
    """`workers` threads and a waiting line of `size` jobs; `submit` never blocks.

    Example:
        >>> work = WorkQueue(workers=1, size=8)
        >>> work.submit(sum, [1, 2]).result()
        3
    """

    def __init__(self, workers: int = 1, size: int = 8):
        if workers < 1:
            raise ConfigError(f"--workers {workers}: must be at least 1")
        if size < 0:
            raise ConfigError(f"--queue {size}: must be at least 0")
        self.workers, self.size = workers, size
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ganforge-studio")
        self._lock = threading.Lock()
        self._admitted = 0      # running + waiting
        self._running = 0
        self.done = 0
        self.rejected = 0

    @property
    def capacity(self) -> int:
        """Jobs held at once: running plus waiting."""
        return self.workers + self.size

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on a worker; raises QueueFull when `capacity` jobs are already held."""
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                raise QueueFull(f"the work queue is full ({self._running} running, "
                                f"{self._admitted - self._running} waiting); try again shortly")
            self._admitted += 1
        try:
            return self._pool.submit(self._run, fn, args)
        except RuntimeError:  # the pool is shut down
            with self._lock:
                self._admitted -= 1
            raise QueueFull("the studio is shutting down") from None

    def _run(self, fn: Callable[..., Any], args: tuple) -> Any:
        with self._lock:
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1
                self._admitted -= 1
                self.done += 1

    def stats(self) -> dict:
        with self._lock:
            return {"workers": self.workers, "size": self.size, "running": self._running,
                    "waiting": self._admitted - self._running, "done": self.done,
                    "rejected": self.rejected}

    def close(self) -> None:
        """Refuse new jobs and let the running and waiting ones finish."""
        self._pool.shutdown(wait=True, cancel_futures=False)
