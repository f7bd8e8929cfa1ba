"""Async code for synchronous callers: one event loop in a daemon thread.

The query engine is asyncio (psycopg's async connections, one task per
worker statement); the CLI and the tests are synchronous.  A
:class:`SyncBridge` owns a loop running in its own thread, runs coroutines on
it (:meth:`SyncBridge.run`) and turns an async iterator into a synchronous one
(:meth:`SyncBridge.iterate`) through a bounded hand-over, so that a slow
reader holds back the async side instead of letting rows pile up.  Closing the
synchronous iterator early (``close()``, leaving its ``with`` block, or
garbage collection) cancels the async side, which cancels worker statements.

>>> async def double(x):
...     return 2 * x
>>> async def numbers():
...     for i in range(3):
...         yield i
>>> with SyncBridge() as bridge:
...     bridge.run(double(21)), list(bridge.iterate(numbers()))
(42, [0, 1, 2])
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: How long closing waits for the async side's cleanup (cancelling worker statements).
CLEANUP_TIMEOUT_S = 30.0


class SyncBridge:
    """An event loop in a daemon thread, for running async code from synchronous code."""

    def __init__(self, name: str = "dms-db-async") -> None:
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references to tasks
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge's loop (to create objects that must live on it)."""
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the bridge's loop and return its result (or raise its exception).

        An interrupt (Ctrl-C) or a timeout in the caller cancels the coroutine
        and waits for its cleanup.
        """
        if threading.current_thread() is self._thread:
            coro.close()  # never scheduled: close it so that it is not reported as never awaited
        self._check_caller()
        handle = self.spawn(coro)
        try:
            return handle.result(timeout)
        except BaseException:
            handle.cancel_and_wait()
            raise

    def spawn(self, coro: Coroutine[Any, Any, T]) -> TaskHandle[T]:
        """Start ``coro`` as a task on the loop; the handle waits for it and cancels it from any thread."""
        handle: TaskHandle[T] = TaskHandle(self._loop)
        self._loop.call_soon_threadsafe(self._start, coro, handle)
        return handle

    def iterate(self, source: AsyncIterable[T], max_queued: int = 16) -> SyncIterator[T]:
        """A synchronous iterator over ``source``, at most ``max_queued`` items ahead of the reader."""
        self._check_caller()
        return SyncIterator(self, source, max_queued)

    def close(self) -> None:
        """Cancel what still runs, stop the loop and join its thread."""
        if self._loop.is_closed():
            return
        self._check_caller()
        self.spawn(_cancel_all_tasks()).result(CLEANUP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncBridge:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self, coro: Coroutine[Any, Any, Any], handle: TaskHandle[Any]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        handle.attach(task)

    def _check_caller(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a SyncBridge cannot be used from its own event loop: await the coroutine instead")


class TaskHandle(Generic[T]):
    """A task on the bridge's loop seen from another thread: its outcome, and a cancel that waits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task: asyncio.Task[T] | None = None
        self._cancel_requested = False
        self._finished = threading.Event()

    def attach(self, task: asyncio.Task[T]) -> None:
        """Called on the loop once the task exists."""
        self._task = task
        task.add_done_callback(lambda _task: self._finished.set())
        if self._cancel_requested:
            task.cancel()

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task; its result, or its exception raised here."""
        if not self._finished.wait(timeout):
            raise TimeoutError("the coroutine did not finish in time")
        assert self._task is not None
        return self._task.result()

    def cancel_and_wait(self, timeout: float = CLEANUP_TIMEOUT_S) -> None:
        """Cancel the task and wait until its cleanup ran (never raises)."""
        if self._finished.is_set() or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._cancel)
        self._finished.wait(timeout)

    def cancel_soon(self) -> None:
        """Ask for cancellation without waiting (safe from a finaliser)."""
        if not self._finished.is_set() and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._cancel_requested = True
        if self._task is not None:
            self._task.cancel()


class SyncIterator(Generic[T]):
    """Items of an async iterable, handed to a synchronous reader one at a time.

    The pump task takes one of ``max_queued`` slots before handing an item
    over and the reader gives it back after taking one, which bounds the items
    in flight; the reader wakes the loop only when the pump waits for a slot.
    The pump refers to its :class:`_Handover`, never to this object, so that
    an iterator the reader drops is collected and cancels the pump.
    """

    def __init__(self, bridge: SyncBridge, source: AsyncIterable[T], max_queued: int) -> None:
        self._loop = bridge.loop
        self._handover = _Handover(max_queued)
        self._pump = bridge.spawn(self._handover.pump(source))
        self._done = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._handover.items.get()
        if kind == "item":
            self._handover.release_slot()
            return value
        self._done = True
        if kind == "error":
            raise value
        self._pump.result()  # the pump's own failure, if any
        raise StopIteration

    def close(self) -> None:
        """Stop early: cancel the async side and wait for its cleanup."""
        if not self._done:
            self._done = True
            self._pump.cancel_and_wait()

    def __enter__(self) -> SyncIterator[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A finaliser must not block: cancel, and let the loop clean up on its own.
        if not self._done:
            self._pump.cancel_soon()


class _Handover:
    """The pump's side: a thread-safe queue of items and a count of slots in use.

    The count lives under a thread lock so that the reader can give a slot back
    without a trip through the loop; only a pump that waits for a slot is woken.
    """

    def __init__(self, max_queued: int) -> None:
        self.items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._in_use = 0
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def release_slot(self) -> None:
        """Reader side (any thread): one item was taken."""
        with self._lock:
            self._in_use -= 1
            waiter, self._waiter = self._waiter, None
        if waiter is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(_wake, waiter)

    async def _take_slot(self) -> None:
        while True:
            with self._lock:
                if self._in_use < self.max_queued:
                    self._in_use += 1
                    return
                assert self._loop is not None
                waiter = self._waiter = self._loop.create_future()
            await waiter

    async def pump(self, source: AsyncIterable[Any]) -> None:
        self._loop = asyncio.get_running_loop()
        iterator = aiter(source)
        try:
            async for item in iterator:
                await self._take_slot()
                self.items.put(("item", item))
        except Exception as exc:
            self.items.put(("error", exc))
        finally:
            await _close_async_iterator(iterator)
            self.items.put(("end", None))


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _close_async_iterator(iterator: AsyncIterator[Any]) -> None:
    """``aclose()`` the iterator if it has one, e.g. a RowStream cancelling its workers."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def _cancel_all_tasks() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
