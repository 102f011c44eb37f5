"""The frame channel: what goes in comes out, a stalled helper costs refusals, never a blocked sender."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeprobe.agent.frame_channel import NOTHING, Reader, Receiver, Sender, Writer, capacity_for


def _pair(slots: int, tmp: Path, max_bytes: int | None = None) -> tuple[Sender, Receiver]:
    data_r, data_w = os.pipe()
    ret_r, ret_w = os.pipe()
    directory = Path(tmp)
    directory.mkdir(parents=True, exist_ok=True)
    return Sender(slots, data_w, ret_r, directory, max_bytes), Receiver(directory, data_r, ret_w)


arrays = hnp.arrays(st.sampled_from([np.uint8, np.int8, np.float32, np.float64, np.int64]),
                    hnp.array_shapes(min_dims=0, max_dims=4, max_side=9))


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(arrays, min_size=0, max_size=3), min_size=1, max_size=6),
       meta=st.recursive(st.none() | st.integers() | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                      max_size=3)))
def test_every_message_arrives_whole_in_order_with_its_arrays(tmp_path_factory: object, batches: list[list[np.ndarray]],
                                                             meta: object) -> None:
    tmp = tmp_path_factory.mktemp("ch")  # type: ignore[attr-defined]
    sender, receiver = _pair(2, tmp)
    try:
        for i, batch in enumerate(batches):
            assert sender.send((i, meta), batch)
            got = receiver.receive()
            assert got.meta == (i, meta)
            assert len(got.arrays) == len(batch)
            for a, b in zip(got.arrays, batch, strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
            got.release()
    finally:
        sender.close()
        receiver.close()


def test_a_helper_that_never_releases_gets_refusals_not_a_blocked_sender(tmp_path: Path) -> None:
    sender, receiver = _pair(2, tmp_path / "ch")
    frame = np.full((480, 640, 3), 7, np.uint8)
    assert sender.send("a", [frame]) and sender.send("b", [frame])
    assert not sender.send("c", [frame])  # both slots out: refused at once
    first = receiver.receive()
    assert first.meta == "a" and int(first.arrays[0][0, 0, 0]) == 7
    assert not sender.send("c", [frame])  # read but not released: still refused
    first.release()
    first.release()  # twice hands back once
    frame[:] = 9  # the caller reuses its buffer: what was sent is a copy
    assert sender.send("c", [frame]) and not sender.send("d", [frame])
    assert int(receiver.receive().arrays[0][0, 0, 0]) == 7
    assert int(receiver.receive().arrays[0][0, 0, 0]) == 9
    sender.close()
    receiver.close()
    assert not (tmp_path / "ch").exists()  # the slot files go with the sender


def test_messages_without_arrays_are_refused_once_the_backlog_is_full(tmp_path: Path) -> None:
    sender, receiver = _pair(1, tmp_path / "ch")
    sender.writer.backlog_bytes = 200_000
    sent = 0
    while sender.send(("tick", "x" * 1000)):  # nobody reads: the pipe fills, then the backlog
        sent += 1
        assert sent < 10_000
    assert 0 < sender.writer.backlog <= 200_000
    got = []
    for _ in range(sent):  # all of them arrive, in order, as the sender writes its backlog into a pipe with room
        sender.flush()
        got.append(receiver.receive().meta)
    assert got == [("tick", "x" * 1000)] * sent and sender.writer.backlog == 0
    sender.close()
    receiver.close()


def test_a_larger_frame_grows_its_slot_and_the_helper_follows(tmp_path: Path) -> None:
    sender, receiver = _pair(1, tmp_path / "ch")
    small, large = np.ones((4, 4), np.float32), np.arange(300_000, dtype=np.int64).reshape(600, 500)
    assert sender.send(1, [small])
    receiver.receive().release()
    assert sender.send(2, [large, small])
    got = receiver.receive()
    np.testing.assert_array_equal(got.arrays[0], large)
    np.testing.assert_array_equal(got.arrays[1], small)
    got.release()
    assert [p.name for p in (tmp_path / "ch").iterdir()] == ["slot-0-1"]  # the outgrown file is gone
    sender.close()
    receiver.close()


def test_a_reader_says_eof_when_the_writer_closes() -> None:
    r, w = os.pipe()
    writer, reader = Writer(w), Reader(r)
    writer.write({"a": 1})
    writer.close()
    writer.close()  # closing twice must not close a descriptor number handed out since
    assert reader.read() == {"a": 1}
    try:
        reader.read()
    except EOFError:
        pass
    else:
        raise AssertionError("no EOFError after the writer closed")
    reader.close()


def test_slots_stay_within_their_shared_memory_budget(tmp_path: Path) -> None:
    frame = np.zeros((240, 320, 3), np.uint8)
    sender, receiver = _pair(4, tmp_path / "ch", max_bytes=2 * capacity_for(frame.nbytes))
    assert sender.send(1, [frame]) and sender.send(2, [frame])
    assert not sender.send(3, [frame])  # two slots are free, but a third file would pass the budget
    first = receiver.receive()
    assert first is not None
    first.release()
    assert sender.send(4, [frame])  # the released slot's file is reused: no new memory
    assert sender.mapped_bytes == 2 * capacity_for(frame.nbytes)
    sender.close()
    receiver.close()


def test_a_read_with_a_timeout_returns_nothing_or_what_has_arrived() -> None:
    r, w = os.pipe()
    writer, reader = Writer(w), Reader(r)
    assert reader.read(timeout=0) is NOTHING and reader.read(timeout=0.01) is NOTHING
    writer.write(None)  # None is a message like any other
    writer.write([1, 2])
    assert reader.read(timeout=0) is None and reader.read(timeout=0) == [1, 2]
    writer.close()
    try:
        reader.read(timeout=0)
    except EOFError:
        pass
    else:
        raise AssertionError("no EOFError after the writer closed")
    reader.close()
