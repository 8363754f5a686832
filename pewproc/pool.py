"""The process pool: `WORKER_POOL_SIZE` children in a `ProcessPoolExecutor`, kept healthy.

An executor whose child dies is broken for good, and the executor cannot kill one hung child or
recycle children without the hangs of `max_tasks_per_child` on Python 3.11. So the pool works in
generations: one executor takes new work; an executor that broke, hung or aged is retired, new
work goes to a fresh one at once, and the retired one is shut down (or, if a task in it hung, its
children killed) as soon as its other tasks have finished. No task is lost to another's fault,
except when a child dies outright: then every task of that executor fails with
`BrokenProcessPool`, and the caller retries them.

A task's time limit counts from the moment a child really starts it: each child says so on a pipe
(a future reports "running" as soon as it is queued for the children, long before). Tasks that
wait while a child sits idle without taking them (a stopped or wedged child holding the call
queue's lock) mean the generation is stalled: it is replaced, and those tasks are handed back as
`pool_stalled`, never started.

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
from itertools import count
from multiprocessing.connection import Connection

from pewproc.processing import Processor, TaskResult, init_child, run_in_child
from pewproc.settings import Settings

log = logging.getLogger(__name__)

TaskFuture = Future[TaskResult]


# How long tasks may wait beside an idle child before the generation counts as stalled (at most
# TASK_TIMEOUT_SECONDS): far beyond the start-up of a child, even on a loaded machine.
STALL_SECONDS = 10.0


@dataclass(eq=False)
class _Generation:
    number: int
    executor: Executor
    starts: Connection  # children send the id of each task they start
    starts_writer: Connection
    tasks_submitted: int = 0
    waiting: dict[int, tuple[TaskFuture, float]] = field(default_factory=dict)  # id -> submitted
    running: dict[TaskFuture, float] = field(default_factory=dict)  # future -> deadline
    ids: dict[TaskFuture, int] = field(default_factory=dict)
    hung: set[TaskFuture] = field(default_factory=set)
    last_progress: float = field(default_factory=time.monotonic)  # a task started or ended
    broken: bool = False

    def close_pipe(self) -> None:
        self.starts.close()
        self.starts_writer.close()


class WorkerPool:
    """Runs `run_in_child(body, attempt)` in child processes and replaces them when needed."""

    def __init__(self, settings: Settings, on_restart: Callable[[str], None] | None = None) -> None:
        self.size = settings.pool_size
        self.settings = settings
        self.task_timeout = settings.task_timeout
        self.stall_after = min(settings.task_timeout, STALL_SECONDS)
        self._task_ids = count(1)
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
        task_id = next(self._task_ids)
        try:
            future = generation.executor.submit(run_in_child, task_id, body, attempt)
        except BrokenProcessPool:
            generation = self._replace("child_lost")
            future = generation.executor.submit(run_in_child, task_id, body, attempt)
        generation.tasks_submitted += 1
        with self._lock:
            generation.waiting[task_id] = (future, time.monotonic())
            generation.ids[future] = task_id
        future.add_done_callback(lambda f, g=generation: self._task_done(g, f))
        return future

    def _task_done(self, generation: _Generation, future: TaskFuture) -> None:
        with self._lock:
            generation.running.pop(future, None)
            generation.waiting.pop(generation.ids.pop(future, 0), None)
            generation.last_progress = time.monotonic()
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            generation.broken = True

    def expired(self, now: float | None = None) -> list[tuple[TaskFuture, str]]:
        """Tasks to settle now, with why: `timeout` (ran past the time limit) or `pool_stalled`
        (never started: the generation took no work). Their generation is retired and its
        children will be killed; whatever their futures do later is to be ignored."""
        now = time.monotonic() if now is None else now
        found: list[tuple[TaskFuture, str]] = []
        for generation in [self._current, *self._retiring]:
            with self._lock:
                self._note_starts(generation, now)
                timed_out = [f for f, deadline in generation.running.items() if deadline <= now]
                for future in timed_out:
                    del generation.running[future]
                stalled = [generation.waiting.pop(task_id)[0]
                           for task_id in self._stalled(generation, now)]
            found += [(f, "timeout") for f in timed_out] + [(f, "pool_stalled") for f in stalled]
            if timed_out or stalled:
                generation.hung.update(timed_out + stalled)
                if generation is self._current:
                    self._replace("pool_stalled" if stalled else "timeout")
        return found

    def _note_starts(self, generation: _Generation, now: float) -> None:
        """Start the clock of every task a child has said it started (called under the lock)."""
        while generation.starts.poll(0):
            try:
                task_id = generation.starts.recv()
            except (EOFError, OSError):
                return
            waiting = generation.waiting.pop(task_id, None)
            if waiting is not None:
                generation.running[waiting[0]] = now + self.task_timeout
                generation.last_progress = now

    def _stalled(self, generation: _Generation, now: float) -> list[int]:
        """Ids of the waiting tasks, if they wait beside an idle child and nothing has moved for
        `stall_after` seconds; none otherwise (called under the lock)."""
        if not generation.waiting or len(generation.running) >= self.size:
            return []
        oldest = min(submitted for _, submitted in generation.waiting.values())
        if now - max(oldest, generation.last_progress) < self.stall_after:
            return []
        return list(generation.waiting)

    def maintain(self) -> None:
        """Shut down retired generations whose remaining tasks are all finished or hung."""
        for generation in list(self._retiring):
            with self._lock:
                busy = bool(generation.running or generation.waiting)
            if busy:
                continue
            self._retiring.remove(generation)
            if generation.hung:
                _kill_children(generation.executor)
            generation.executor.shutdown(wait=False, cancel_futures=True)
            generation.close_pipe()

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
        return sum(len(g.running) + len(g.waiting) for g in [self._current, *self._retiring])

    def shutdown(self, wait: bool = True) -> None:
        """Stop every generation; with wait=False, kill children still running."""
        for generation in [*self._retiring, self._current]:
            if not wait:
                _kill_children(generation.executor)
            generation.executor.shutdown(wait=wait, cancel_futures=True)
            generation.close_pipe()
        self._retiring.clear()

    def _new_generation(self) -> _Generation:
        self._generations += 1
        starts, starts_writer = self._context.Pipe(duplex=False)
        executor = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=self._context,
            initializer=init_child,
            initargs=(self.settings, os.getpid(), starts_writer),
        )
        return _Generation(self._generations, executor, starts, starts_writer)

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

    def expired(self, now: float | None = None) -> list[tuple[TaskFuture, str]]:
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
