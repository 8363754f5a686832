"""The process pool: `WORKER_POOL_SIZE` children in a `ProcessPoolExecutor`, kept healthy.

An executor whose child dies is broken for good, and the executor cannot kill one hung child or
recycle children without the hangs of `max_tasks_per_child` on Python 3.11. So the pool works in
generations: one executor takes new work; an executor that broke, hung or aged is retired, new
work goes to a fresh one at once, and the retired one is shut down (or, if a task in it hung, its
children killed) as soon as its other tasks have finished. No task is lost to another's fault,
except when a child dies outright: then every task of that executor fails with
`BrokenProcessPool`, and the caller retries them.

Every method is called from the consumer's thread; the executors' own threads only run the
done-callbacks registered here, which touch nothing but their generation's task table.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from pewproc.processing import Processor, TaskResult, init_child, run_in_child
from pewproc.settings import Settings

log = logging.getLogger(__name__)

TaskFuture = Future[TaskResult]


@dataclass(eq=False)
class _Generation:
    number: int
    executor: Executor
    tasks_submitted: int = 0
    running: dict[TaskFuture, float] = field(default_factory=dict)  # future -> deadline
    hung: set[TaskFuture] = field(default_factory=set)
    broken: bool = False


class WorkerPool:
    """Runs `run_in_child(body, attempt)` in child processes and replaces them when needed."""

    def __init__(self, settings: Settings, on_restart: Callable[[str], None] | None = None) -> None:
        self.size = settings.pool_size
        self.settings = settings
        self.task_timeout = settings.task_timeout
        self.recycle_after = settings.max_tasks_per_child * self.size
        self._on_restart = on_restart or (lambda reason: None)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["pewproc.processing"])
        self._generations = 0
        self._current = self._new_generation()
        self._retiring: list[_Generation] = []
        self._lock = threading.Lock()

    # Work

    def submit(self, body: bytes, attempt: int) -> TaskFuture:
        generation = self._current
        if generation.broken:
            generation = self._replace("child_lost")
        elif self.recycle_after and generation.tasks_submitted >= self.recycle_after:
            generation = self._replace("recycled")
        try:
            future = generation.executor.submit(run_in_child, body, attempt)
        except BrokenProcessPool:
            generation = self._replace("child_lost")
            future = generation.executor.submit(run_in_child, body, attempt)
        generation.tasks_submitted += 1
        with self._lock:
            generation.running[future] = time.monotonic() + self.task_timeout
        future.add_done_callback(lambda f, g=generation: self._task_done(g, f))
        return future

    def _task_done(self, generation: _Generation, future: TaskFuture) -> None:
        with self._lock:
            generation.running.pop(future, None)
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            generation.broken = True

    def expired(self, now: float | None = None) -> list[TaskFuture]:
        """Tasks past the time limit; their generation is retired and its children will be killed.

        The caller settles these tasks itself; whatever their futures do later is to be ignored.
        """
        now = time.monotonic() if now is None else now
        found: list[TaskFuture] = []
        for generation in [self._current, *self._retiring]:
            with self._lock:
                late = [f for f, deadline in generation.running.items() if deadline <= now]
                # A task still queued in the executor has not started: its clock starts later.
                for future in [f for f in late if not f.running() and not f.done()]:
                    generation.running[future] = now + self.task_timeout
                    late.remove(future)
                for future in late:
                    del generation.running[future]
            if late:
                generation.hung.update(late)
                found.extend(late)
                if generation is self._current:
                    self._replace("timeout")
        return found

    def maintain(self) -> None:
        """Shut down retired generations whose remaining tasks are all finished or hung."""
        for generation in list(self._retiring):
            with self._lock:
                busy = bool(generation.running)
            if busy:
                continue
            self._retiring.remove(generation)
            if generation.hung:
                _kill_children(generation.executor)
            generation.executor.shutdown(wait=False, cancel_futures=True)

    # Lifecycle

    def warm_up(self, timeout: float = 60.0) -> list[int]:
        """Start every child now, so a broken set-up shows at start and `ps` shows the pool."""
        executor = self._current.executor
        futures = [executor.submit(_busy_pid) for _ in range(self.size)]
        try:
            return sorted({f.result(timeout=timeout) for f in futures})
        except (BrokenProcessPool, TimeoutError) as exc:
            log.error("the pool's children did not start: %r", exc)
            return []

    @property
    def in_flight(self) -> int:
        return sum(len(g.running) for g in [self._current, *self._retiring])

    def shutdown(self, wait: bool = True) -> None:
        """Stop every generation; with wait=False, kill children still running."""
        for generation in [*self._retiring, self._current]:
            if not wait:
                _kill_children(generation.executor)
            generation.executor.shutdown(wait=wait, cancel_futures=True)
        self._retiring.clear()

    def _new_generation(self) -> _Generation:
        self._generations += 1
        executor = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=self._context,
            initializer=init_child,
            initargs=(self.settings, os.getpid()),
        )
        return _Generation(self._generations, executor)

    def _replace(self, reason: str) -> _Generation:
        old = self._current
        self._current = self._new_generation()
        self._retiring.append(old)
        self._on_restart(reason)
        log.warning(
            "replacing the pool's children (generation %d -> %d): %s",
            old.number, self._current.number, reason,
        )
        return self._current


def _busy_pid() -> int:
    """A warm-up task. The executor starts a child only when none is idle, so each warm-up task
    keeps its child busy a moment, long enough for the next submission to start another."""
    time.sleep(0.1)
    return os.getpid()


def _kill_children(executor: Executor) -> None:
    # The executor keeps no public handle on its processes; `_processes` has been stable from
    # Python 3.8 to 3.13 and is the only way to stop a child stuck in a task.
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


class InlinePool:
    """Sequential mode: one match at a time in the main process, same interface as WorkerPool.

    The work runs on one helper thread, so the connection's thread keeps serving heartbeats; no
    child process exists. A task past the time limit is reported but cannot be stopped.
    """

    size = 1

    def __init__(self, settings: Settings, on_restart: Callable[[str], None] | None = None) -> None:
        self._processor = Processor(settings)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pewproc-seq")
        self._running: set[TaskFuture] = set()

    def submit(self, body: bytes, attempt: int) -> TaskFuture:
        future = self._executor.submit(self._processor.process, body, attempt)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    def expired(self, now: float | None = None) -> list[TaskFuture]:
        return []

    def maintain(self) -> None:
        return None

    def warm_up(self, timeout: float = 60.0) -> list[int]:
        return []

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
        self._processor.close()


def make_pool(settings: Settings, on_restart: Callable[[str], None] | None = None
              ) -> WorkerPool | InlinePool:
    if settings.processing_mode == "sequential":
        return InlinePool(settings, on_restart)
    return WorkerPool(settings, on_restart)
