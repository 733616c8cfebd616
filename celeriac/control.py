"""``app.control``: revoke and purge now; inspect and the other remote-control commands
travel by NOTIFY to the workers (see the operations issue).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery

REVOKE_EXPIRES = 3 * 86400.0  # revoked ids are remembered for three days


class Control:
    """Remote control of workers, through the database."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Iterable[str],
        destination: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Revoke tasks durably: waiting ones become REVOKED now; running ones are
        stopped when ``terminate`` (only that task, never whatever the process runs next)."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        self.app.backend.revoke(ids, terminate, signal if terminate else None, REVOKE_EXPIRES)

    def terminate(
        self,
        task_id: str | Iterable[str],
        destination: Any = None,
        signal: str = "SIGTERM",
        **kwargs: Any,
    ) -> None:
        self.revoke(task_id, destination=destination, terminate=True, signal=signal)

    def purge(self, queues: Iterable[str] | None = None) -> int:
        """Delete waiting jobs (of ``queues``, default the default queue); return how many."""
        return self.app.broker.purge(list(queues or [self.app.conf.task_default_queue]))

    discard_all = purge
