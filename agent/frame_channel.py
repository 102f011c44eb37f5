"""Frames and small messages to a helper process without blocking the sender or pickling pixels.

Why a process at all: a helper thread shares the interpreter lock with the deployed loop, and every time the
loop comes back from a C call (a decode, an inference) that released the lock it may have to wait up to the
switch interval for the helper to hand it back. A helper process has its own interpreter; the loop then pays
only for a copy of the frames it hands over.

The sender (the deployed process) owns a few *slots*: files in a private directory under ``/dev/shm`` (memory,
not disk), mapped by both processes. :meth:`Sender.send` copies the arrays of one message into a free slot and
writes the message (pickled, small: indices, timings, a decoded prediction) to a pipe, framed by its length.
The pipe is written without blocking: what the pipe cannot take now waits in a bounded backlog that the next
call writes first, so a helper that stalls costs drops (counted by the caller), never a stalled sender. With
no free slot, or the backlog full, ``send`` returns False.

The receiver (the helper) reads messages, gets views of the arrays, and writes the slot number back on the
return pipe when it is done with them (:meth:`Received.release`), so the slot can carry the next frame.
Messages from helper to sender (results) use the same framing in the other direction (:class:`Writer`,
:class:`Reader`); the sender reads them without blocking.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_LEN = struct.Struct("<I")
#: arrays start on this boundary inside a slot (cache lines; numpy's own alignment needs 16)
_ALIGN = 64
#: bytes the sender keeps for a pipe that is full before it refuses a message (a stalled helper)
BACKLOG_BYTES = 1 << 20
#: what a read with a timeout returns when nothing came in time (None is a message like any other)
NOTHING: Any = object()


def _round(n: int, to: int) -> int:
    return -(-n // to) * to


def shm_root() -> str:
    """Where slot files live: /dev/shm (RAM) where the system has it, else the temp dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def close_fd(fd: int) -> int:
    """Close a descriptor if open and return -1 to store in its place: a second close must not close a number
    the system has handed out again."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    return -1


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Writer:
    """Length-framed pickles onto a pipe; ``block=False`` never waits (a backlog holds what the pipe refused)."""

    def __init__(self, fd: int, block: bool = True, backlog_bytes: int = BACKLOG_BYTES):
        self.fd = fd
        self.block = block
        self.backlog_bytes = backlog_bytes
        self._pending = bytearray()
        if not block:
            _nonblocking(fd)

    def flush(self) -> None:
        """Write what the backlog holds, as far as the pipe takes it now (all of it when blocking)."""
        while self._pending and self.fd >= 0:
            try:
                n = os.write(self.fd, self._pending)
            except BlockingIOError:
                return
            del self._pending[:n]

    def write(self, obj: Any) -> bool:
        """Queue one message; False (and nothing written) when a non-blocking backlog is full."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.flush()
        if not self.block and len(self._pending) + len(data) > self.backlog_bytes:
            return False
        self._pending += _LEN.pack(len(data))
        self._pending += data
        self.flush()
        return True

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self.fd = close_fd(self.fd)


class Reader:
    """The other end of a :class:`Writer`: whole messages as they arrive; ``EOFError`` once the writer is gone."""

    def __init__(self, fd: int, block: bool = True):
        self.fd = fd
        self.block = block
        self._buf = bytearray()
        self.eof = False
        if not block:
            _nonblocking(fd)

    def _fill(self) -> bool:
        """Read what is there (waiting for something when blocking); False when nothing came."""
        if self.fd < 0:
            self.eof = True
            return False
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return False
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        return True

    def _pop(self) -> tuple[bool, Any]:
        if len(self._buf) < _LEN.size:
            return False, None
        (n,) = _LEN.unpack_from(self._buf)
        if len(self._buf) < _LEN.size + n:
            return False, None
        obj = pickle.loads(memoryview(self._buf)[_LEN.size:_LEN.size + n])
        del self._buf[:_LEN.size + n]
        return True, obj

    def read(self, timeout: float | None = None) -> Any:
        """The next message, waiting for it (up to ``timeout`` s, then :data:`NOTHING`; blocking reader);
        raises EOFError when the writer has closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ok, obj = self._pop()
            if ok:
                return obj
            if self.eof:
                raise EOFError("the other process closed its end")
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                if not select.select([self.fd], [], [], left)[0]:
                    return NOTHING
            self._fill()

    def ready(self) -> list[Any]:
        """Every whole message that has arrived, without waiting (non-blocking reader)."""
        out: list[Any] = []
        while self._fill():
            pass
        while True:
            ok, obj = self._pop()
            if not ok:
                return out
            out.append(obj)

    def close(self) -> None:
        self.fd = close_fd(self.fd)


class _Slot:
    """One mapped file; it grows (a new file, a new generation) when a message needs more room."""

    def __init__(self, directory: Path, index: int):
        self.directory, self.index = directory, index
        self.generation = -1
        self.capacity = 0
        self.map: mmap.mmap | None = None

    def ensure(self, size: int) -> None:
        if size <= self.capacity:
            return
        self.close(unlink=True)
        self.generation += 1
        self.capacity = capacity_for(size)
        path = slot_path(self.directory, self.index, self.generation)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.capacity)
            self.map = mmap.mmap(fd, self.capacity)
        finally:
            os.close(fd)

    def close(self, unlink: bool) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None
            if unlink:
                with contextlib.suppress(OSError):
                    os.unlink(slot_path(self.directory, self.index, self.generation))


def capacity_for(size: int) -> int:
    """The bytes a slot file gets for a message of ``size``: a quarter more, so a slightly larger one fits."""
    return _round(max(size, 4096) * 5 // 4, mmap.PAGESIZE)


def slot_path(directory: Path, index: int, generation: int) -> Path:
    return directory / f"slot-{index}-{generation}"


def _layout(arrays: Sequence[np.ndarray]) -> tuple[list[tuple[str, tuple[int, ...], int]], int]:
    """(dtype, shape, offset) per array and the bytes they need, each aligned."""
    specs, offset = [], 0
    for a in arrays:
        specs.append((a.dtype.str, tuple(a.shape), offset))
        offset = _round(offset + a.nbytes, _ALIGN)
    return specs, offset


class Sender:
    """The deployed process's end: ``send`` copies arrays into a free slot and never blocks."""

    def __init__(self, slots: int, data_fd: int, return_fd: int, directory: Path | None = None,
                 max_bytes: int | None = None):
        self.directory = directory or Path(tempfile.mkdtemp(prefix=f"edgeprobe-{os.getpid()}-", dir=shm_root()))
        self._slots = [_Slot(self.directory, i) for i in range(slots)]
        self._free = list(range(slots))
        #: shared memory the slots may hold at once (a slot file is made when first needed, reused after)
        self.max_bytes = max_bytes
        self.writer = Writer(data_fd, block=False)
        self._returns = return_fd
        _nonblocking(return_fd)
        self._ret_buf = b""

    def _reclaim(self) -> None:
        while self._returns >= 0:
            try:
                chunk = os.read(self._returns, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunk = self._ret_buf + chunk
            whole = len(chunk) // _LEN.size * _LEN.size
            self._free.extend(i for (i,) in _LEN.iter_unpack(chunk[:whole]))
            self._ret_buf = chunk[whole:]

    @property
    def free_slots(self) -> int:
        self._reclaim()
        return len(self._free)

    def send(self, meta: Any, arrays: Sequence[np.ndarray] = ()) -> bool:
        """One message and its arrays (copied now: the caller may reuse its buffers); False if it was refused."""
        if not arrays:
            return self.writer.write(("msg", meta))
        self._reclaim()
        if not self._free:
            return False
        specs, size = _layout(arrays)
        slot = self._slots[self._free[-1]]
        if self.max_bytes is not None and size > slot.capacity \
                and self.mapped_bytes - slot.capacity + capacity_for(size) > self.max_bytes:
            return False  # a new slot file would pass the budget: refused like a full queue
        slot.ensure(size)
        assert slot.map is not None
        for a, (_, shape, offset) in zip(arrays, specs, strict=True):
            view = np.ndarray(shape, a.dtype, buffer=slot.map, offset=offset)
            np.copyto(view, a, casting="no")
        if not self.writer.write(("slot", meta, slot.index, slot.generation, specs)):
            return False
        self._free.pop()
        return True

    @property
    def mapped_bytes(self) -> int:
        """Shared memory the slot files hold now."""
        return sum(slot.capacity for slot in self._slots)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, unlink: bool = True) -> None:
        """Close the pipes and remove the slot files (the helper's mappings stay valid until it unmaps them);
        ``unlink=False`` leaves the files for a helper that has yet to read what was sent (it removes them)."""
        self.writer.close()
        self._returns = close_fd(self._returns)
        for slot in self._slots:
            slot.close(unlink=unlink)
        if unlink:
            shutil.rmtree(self.directory, ignore_errors=True)


class Received:
    """One message as the helper sees it; ``arrays`` are views of the slot, valid until :meth:`release`."""

    def __init__(self, meta: Any, arrays: list[np.ndarray], receiver: Receiver | None = None, slot: int = -1):
        self.meta, self.arrays = meta, arrays
        self._receiver, self._slot = receiver, slot

    def release(self) -> None:
        """Hand the slot back to the sender (copy what must outlive this first); safe to call twice."""
        if self._receiver is not None:
            self._receiver.release(self._slot)
            self._receiver = None
            self.arrays = []


class Receiver:
    """The helper's end: blocking reads of what the :class:`Sender` sent."""

    def __init__(self, directory: Path, data_fd: int, return_fd: int):
        self.directory = directory
        self.reader = Reader(data_fd)
        self._returns = return_fd
        self._maps: dict[int, tuple[int, mmap.mmap]] = {}

    def _map(self, index: int, generation: int) -> mmap.mmap:
        known = self._maps.get(index)
        if known is not None and known[0] == generation:
            return known[1]
        if known is not None:
            with contextlib.suppress(BufferError):  # views of the old map keep it until they are collected
                known[1].close()
        with open(slot_path(self.directory, index, generation), "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
        self._maps[index] = (generation, m)
        return m

    def receive(self, timeout: float | None = None) -> Received | None:
        """The next message (waiting for it, up to ``timeout`` s, then None); EOFError when the sender has gone."""
        msg = self.reader.read(timeout)
        if msg is NOTHING:
            return None
        if msg[0] == "msg":
            return Received(msg[1], [])
        _, meta, index, generation, specs = msg
        m = self._map(index, generation)
        arrays = [np.ndarray(shape, np.dtype(dtype), buffer=m, offset=offset) for dtype, shape, offset in specs]
        return Received(meta, arrays, self, index)

    def __iter__(self) -> Iterator[Received]:
        while True:
            try:
                msg = self.receive()
            except EOFError:
                return
            assert msg is not None  # (no timeout)
            yield msg

    def release(self, index: int) -> None:
        with contextlib.suppress(OSError):  # the sender has gone: nothing to hand back to
            os.write(self._returns, _LEN.pack(index))

    def close(self) -> None:
        for _, m in self._maps.values():
            with contextlib.suppress(BufferError):  # a view still alive keeps its map until it is collected
                m.close()
        self._maps.clear()
        self.reader.close()
        self._returns = close_fd(self._returns)


def spawn_helper(module: str, directory: Path, child_fds: Sequence[int]) -> subprocess.Popen[bytes]:
    """Start ``python -m module DIRECTORY FD...``, handing it ``child_fds`` (closed here once it has them).

    A fresh interpreter, not multiprocessing: nothing of the application is re-imported or forked. The helper
    imports edgeprobe from where this process did (installed or a checkout) and shares this process's stderr,
    so its one-line warnings reach the same log."""
    env = dict(os.environ)
    import edgeprobe

    root = str(Path(edgeprobe.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    try:
        return subprocess.Popen([sys.executable, "-m", module, str(directory), *map(str, child_fds)],
                                pass_fds=tuple(child_fds), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                close_fds=True, env=env)
    finally:
        for fd in child_fds:
            os.close(fd)
