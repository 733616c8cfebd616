"""USR1's stack dump runs inside a signal handler, between two bytecodes of the main
thread: it must not write through ``sys.stderr``, whose buffer refuses a reentrant write
while the main thread is logging."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac.worker import stacks


class _Refusing:
    """A stderr whose buffer is busy: what a handler landing mid-log would meet."""

    def write(self, text: str) -> int:
        raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")

    def flush(self) -> None:
        raise RuntimeError("reentrant call")

    def fileno(self) -> int:
        return 2


def test_dump_goes_to_the_descriptor_not_through_the_busy_buffer(
    capfd: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setattr("sys.stderr", _Refusing())
    stacks.dump_stacks()
    err = capfd.readouterr().err
    assert "(most recent call first):" in err
    assert "test_dump_goes_to_the_descriptor" in err  # this very frame
