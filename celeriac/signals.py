"""Celery's signals, with Celery's names, senders and arguments.

| signal | sender | arguments | sent |
|---|---|---|---|
| before_task_publish | task name | body, exchange, routing_key, headers, properties, declare, retry_policy | before a message is written |
| after_task_publish | task name | body, exchange, routing_key | after it is written |
| task_received | worker | request | claimed by the worker (main process) |
| task_prerun | task | task_id, task, args, kwargs | before the body runs |
| task_postrun | task | task_id, task, args, kwargs, retval, state | after, always |
| task_success | task | result | after success |
| task_failure | task | task_id, exception, args, kwargs, traceback, einfo | after failure |
| task_retry | task | request, reason, einfo | after a retry was requested |
| task_revoked | task | request, terminated, signum, expired | revoked, expired or terminated |
| task_unknown | worker | message, exc, name, id | unregistered task name |
| task_rejected | worker | message, exc | undecodable message |
| task_internal_error | task | task_id, args, kwargs, request, exception, traceback, einfo | error in celeriac itself |
| worker_init, worker_ready, worker_shutting_down (sig, how, exitcode), worker_shutdown | worker | | worker lifecycle |
| worker_process_init, worker_process_shutdown | | | in each prefork child |
| celeryd_init, celeryd_after_setup | node name | instance, conf | worker start-up |
| beat_init, beat_embedded_init | beat | | beat start-up |
| import_modules | app | | when the worker imports task modules |
| setup_logging, after_setup_logger, after_setup_task_logger | | logger, loglevel, logfile, format, colorize | CLI logging set-up |

Handlers are called as ``handler(sender=sender, signal=signal, **kwargs)``. An exception
in a handler is logged and does not stop the others (Celery's ``send`` semantics).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Signal:
    """A signal that handlers connect to."""

    def __init__(self, name: str, providing_args: Any = None) -> None:
        self.name = name
        self._receivers: list[tuple[Any, Any, bool]] = []
        self._lock = threading.Lock()

    def connect(
        self,
        receiver: Callable[..., Any] | None = None,
        *,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Any = None,
    ) -> Any:
        """Connect a handler; usable as ``@signal.connect`` or ``@signal.connect(sender=...)``."""
        if receiver is None:
            return lambda fun: self.connect(
                fun, sender=sender, weak=weak, dispatch_uid=dispatch_uid
            )
        ref: Any = receiver
        if weak:
            try:
                ref = (
                    weakref.WeakMethod(receiver)
                    if hasattr(receiver, "__self__")
                    else weakref.ref(receiver)
                )
            except TypeError:
                weak = False
        with self._lock:
            key = dispatch_uid or id(receiver)
            self._receivers = [r for r in self._receivers if r[0] != (key, sender)]
            self._receivers.append(((key, sender), ref, weak))
        return receiver

    def disconnect(
        self,
        receiver: Callable[..., Any] | None = None,
        sender: Any = None,
        dispatch_uid: Any = None,
    ) -> None:
        key = dispatch_uid or id(receiver)
        with self._lock:
            self._receivers = [r for r in self._receivers if r[0] != (key, sender)]

    def receivers(self) -> list[Callable[..., Any]]:
        live = []
        for (_, _sender), ref, weak in list(self._receivers):
            fun = ref() if weak else ref
            if fun is not None:
                live.append(fun)
        return live

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Any, Any]]:
        """Call every handler whose sender matches; errors are logged, not raised."""
        if not self._receivers:  # most signals, on every job: no list copied
            return []
        responses = []
        for (_, wanted), ref, weak in list(self._receivers):
            if wanted is not None and wanted != sender and wanted != getattr(sender, "name", None):
                continue
            fun = ref() if weak else ref
            if fun is None:
                continue
            try:
                responses.append((fun, fun(sender=sender, signal=self, **named)))
            except Exception as exc:
                logger.exception("Signal handler %r raised: %r", fun, exc)
                responses.append((fun, exc))
        return responses

    send_robust = send

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
task_internal_error = Signal("task_internal_error")
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
import_modules = Signal("import_modules")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_shutting_down = Signal("worker_shutting_down")
heartbeat_sent = Signal("heartbeat_sent")
beat_init = Signal("beat_init")
beat_embedded_init = Signal("beat_embedded_init")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")

__all__ = [name for name, value in dict(globals()).items() if isinstance(value, Signal)] + [
    "Signal"
]
