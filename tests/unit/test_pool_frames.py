"""A prefork child's outcomes cross its pipe as frames the reader takes in chunks."""

from __future__ import annotations

import multiprocessing
import os
import select
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from celeriac.worker.prefork import CHUNK, FRAME, Frames, Unreadable, _answer

Pipe = tuple[Frames, Connection]


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    """(the reader's end as Frames, the child's end)."""
    parent, child = multiprocessing.Pipe()
    poller = select.poll()
    poller.register(parent.fileno(), select.POLLIN)
    yield Frames(parent.fileno(), lambda: bool(poller.poll(0))), child
    parent.close()
    child.close()


def _read_until(frames: Frames, count: int) -> list[object]:
    got: list[object] = []
    while len(got) < count:
        items, ended = frames.read()
        assert not ended
        got += items
    return got


def test_several_outcomes_are_taken_in_one_read_in_order(pipe: Pipe) -> None:
    frames, child = pipe
    for n in range(50):
        _answer(child, {"n": n})
    items, ended = frames.read()
    assert items == [{"n": n} for n in range(50)] and not ended
    assert frames.buffer == bytearray()


def test_an_outcome_larger_than_a_chunk_is_put_together(pipe: Pipe) -> None:
    frames, child = pipe
    big = os.urandom(5 * CHUNK)

    def write() -> None:
        _answer(child, big)
        _answer(child, "after")

    writer = threading.Thread(target=write)
    writer.start()  # (the pipe holds less than the frame: the write blocks until read)
    assert _read_until(frames, 2) == [big, "after"]
    writer.join()


def test_a_frame_cut_off_by_the_childs_death_is_never_reported(pipe: Pipe) -> None:
    frames, child = pipe
    _answer(child, "whole")
    os.write(child.fileno(), FRAME.pack(100) + b"only part of it")
    child.close()
    items, ended = frames.read()
    while not ended:  # (the end of the pipe may come with a later read)
        more, ended = frames.read()
        items += more
    assert items == ["whole"]


def test_an_unreadable_outcome_is_marked_in_its_place(pipe: Pipe) -> None:
    frames, child = pipe
    _answer(child, "before")
    body = b"\x80\x05not a pickle"
    os.write(child.fileno(), FRAME.pack(len(body)) + body)
    _answer(child, "after")
    items, ended = frames.read()
    assert items[0] == "before" and items[2] == "after" and not ended
    assert isinstance(items[1], Unreadable) and "could not be read" in items[1].reason
