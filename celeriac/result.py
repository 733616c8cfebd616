"""Task results: AsyncResult, GroupResult and EagerResult, read from PostgreSQL.

``get()`` waits on a notification (LISTEN/NOTIFY) instead of polling. Inside a running
task, ``get()`` on a result that is not ready raises RuntimeError as Celery does (it
would block a worker slot), but a result that is already stored is simply returned, so
``AsyncResult(task_id).get(propagate=False)`` in an error handler works.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celeriac import _state, states
from celeriac.exceptions import TaskRevokedError

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.backend import ResultMeta

E_WOULDBLOCK = (
    "Never call result.get() within a task!\n"
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html#avoid-launching-synchronous-subtasks"
)


_join = threading.local()


@contextmanager
def allow_join_result() -> Iterator[None]:
    """Allow ``get()`` on unfinished results inside a task (Celery's escape hatch)."""
    previous = getattr(_join, "allowed", False)
    _join.allowed = True
    try:
        yield
    finally:
        _join.allowed = previous


def _would_block(disable_sync_subtasks: bool) -> bool:
    """Waiting here would block a worker slot (Celery refuses it)."""
    allowed = getattr(_join, "allowed", False)
    return disable_sync_subtasks and not allowed and _state.in_worker_task()


def _require_not_blocking(disable_sync_subtasks: bool) -> None:
    if _would_block(disable_sync_subtasks):
        raise RuntimeError(E_WOULDBLOCK)


class AsyncResult:
    """The result of a task that may not have run yet."""

    def __init__(
        self,
        id: str,
        backend: Any = None,
        task_name: str | None = None,
        app: Celery | None = None,
        parent: AsyncResult | None = None,
        ignored: bool = False,
    ) -> None:
        self.id = id
        self.app = app or _state.get_current_app()
        self.task_name = task_name
        self.parent = parent
        self.ignored = ignored
        self._cache: ResultMeta | None = None
        # the result as its worker announced it while get() waited: status, content type
        # and value only, so never taken for the whole row (``_meta`` still reads that)
        self._delivered: ResultMeta | None = None
        # time.monotonic() just before this process published the task (send_task)
        self._sent_at: float | None = None

    # identity --------------------------------------------------------------------
    @property
    def task_id(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    # reading ---------------------------------------------------------------------
    def _meta(self) -> ResultMeta | None:
        if self._cache is not None:
            return self._cache
        meta = self.app.backend.get(self.id)
        if meta is not None and meta.ready:
            self._cache = meta  # final states never change
        return meta

    @property
    def state(self) -> str:
        meta = self._meta()
        return meta.status if meta else states.PENDING

    status = state

    @property
    def result(self) -> Any:
        meta = self._meta()
        return self.app.backend.decode(meta) if meta else None

    info = result

    @property
    def traceback(self) -> str | None:
        meta = self._meta()
        return meta.traceback if meta else None

    @property
    def date_done(self) -> dt.datetime | None:
        meta = self._meta()
        return meta.date_done if meta and meta.ready else None

    @property
    def name(self) -> str | None:
        meta = self._meta()
        return meta.name if meta else self.task_name

    def _request(self) -> tuple[list[Any], dict[str, Any]] | None:
        meta = self._meta()
        if meta is None or meta.request is None or meta.request_type is None:
            return None
        from celeriac import serialization

        body = serialization.loads(meta.request, meta.request_type, self.app.accept_content)
        return list(body[0]), dict(body[1])

    @property
    def args(self) -> list[Any] | None:
        request = self._request()
        return request[0] if request else None

    @property
    def kwargs(self) -> dict[str, Any] | None:
        request = self._request()
        return request[1] if request else None

    @property
    def worker(self) -> str | None:
        meta = self._meta()
        return meta.worker if meta else None

    @property
    def retries(self) -> int | None:
        meta = self._meta()
        return meta.retries if meta else None

    @property
    def queue(self) -> str | None:
        meta = self._meta()
        return meta.queue if meta else None

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def exists(self) -> bool:
        """True when a state is stored for this id (Celery 5.7's exists())."""
        return self._meta() is not None

    # waiting -----------------------------------------------------------------------
    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_interval: Callable[..., Any] | None = None,
        disable_sync_subtasks: bool = True,
        EXCEPTION_STATES: frozenset[str] = states.EXCEPTION_STATES,
        PROPAGATE_STATES: frozenset[str] = states.PROPAGATE_STATES,
    ) -> Any:
        """Wait for the task and return its result (re-raising its error if ``propagate``)."""
        if self.ignored:
            return None
        meta = self._cache
        if meta is None and _would_block(disable_sync_subtasks):
            meta = self._meta()
            if meta is None or not meta.ready:
                raise RuntimeError(E_WOULDBLOCK)
        elif meta is None:  # wait_for reads first, unless nothing can be stored yet
            backend = self.app.backend
            backend.wait_for([self.id], timeout, interval, self._is_ready, self._sent_at)
            meta = self._cache or self._delivered
        assert meta is not None
        if follow_parents and propagate and self.parent is not None:
            self.parent._raise_if_failed()
        value = self.app.backend.decode(meta)
        if callback is not None:
            callback(self.id, value)
        if propagate and meta.status in PROPAGATE_STATES:
            raise _with_remote_traceback(_as_exception(value, meta), meta)
        return value

    wait = get

    def _is_ready(self) -> bool:
        delivered = self.app.backend.delivered(self.id)
        if delivered is not None:  # announced at commit: no read needed
            self._delivered = delivered
            return True
        meta = self.app.backend.get(self.id)
        if meta is not None and meta.ready:
            self._cache = meta
            return True
        return False

    def _raise_if_failed(self) -> None:
        if self.parent is not None:
            self.parent._raise_if_failed()
        meta = self._meta()
        if meta is not None and meta.status in states.PROPAGATE_STATES:
            raise _as_exception(self.app.backend.decode(meta), meta)

    # acting --------------------------------------------------------------------------
    def forget(self) -> None:
        """Delete the stored result of this task and its parents."""
        ids = [self.id]
        parent = self.parent
        while parent is not None:
            ids.append(parent.id)
            parent = parent.parent
        self._cache = None
        self.app.backend.forget(ids)

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Revoke the task: it won't run, and with ``terminate`` a running one is stopped.

        The result of a workflow (a chain's last task, a chord's body) revokes every part
        it links back to through ``parent``: a chain or chord stops wherever it is.
        """
        self.app.control.revoke(self.graph_ids(), terminate=terminate, signal=signal)
        if wait:
            self.app.backend.wait_for([self.id], timeout, 0.5, self._is_ready)

    def graph_ids(self) -> list[str]:
        """This id and those of every result it links back to through ``parent``."""
        ids = [self.id]
        if self.parent is not None:
            ids += [i for i in self.parent.graph_ids() if i not in ids]
        return ids

    def then(self, callback: Any) -> Any:
        raise NotImplementedError("AsyncResult.then is not supported by celeriac")

    def as_tuple(self) -> tuple[Any, ...]:
        parent = self.parent
        return (self.id, parent.as_tuple() if parent else None), None

    def __del__(self) -> None:  # nothing to release: no per-result subscription
        return None


def _with_remote_traceback(exc: BaseException, meta: ResultMeta) -> BaseException:
    """Attach the worker's traceback text as a note, shown when the error is printed."""
    if meta.traceback:
        exc.add_note(f"Remote traceback of task {meta.task_id}:\n{meta.traceback.rstrip()}")
    return exc


def _as_exception(value: Any, meta: ResultMeta) -> BaseException:
    if isinstance(value, BaseException):
        return value
    if meta.status == states.REVOKED:
        return TaskRevokedError(value)
    return Exception(value)


class EagerResult(AsyncResult):
    """The result of a task run in this process (``apply()``, ``task_always_eager``)."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
        app: Celery | None = None,
    ) -> None:
        super().__init__(id, app=app, task_name=name)
        self._result = ret_value
        self._state = state
        self._traceback = traceback

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    @property
    def name(self) -> str | None:
        return self.task_name

    def ready(self) -> bool:
        return True

    def get(self, *args: Any, **kwargs: Any) -> Any:
        propagate = kwargs.get("propagate", args[1] if len(args) > 1 else True)
        if propagate and self._state in states.PROPAGATE_STATES:
            raise (
                self._result if isinstance(self._result, BaseException) else Exception(self._result)
            )
        return self._result

    wait = get

    def forget(self) -> None:
        return None

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


class ResultSet:
    """A set of results (the base of GroupResult)."""

    def __init__(self, results: Sequence[AsyncResult], app: Celery | None = None) -> None:
        self.results = list(results)
        self.app = app or (self.results[0].app if self.results else _state.get_current_app())

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    def _metas(self) -> dict[str, ResultMeta]:
        return self.app.backend.get_many([r.id for r in self.results])

    def _states(self) -> list[str]:
        if self.results and all(isinstance(r, EagerResult) for r in self.results):
            return [r.state for r in self.results]  # eager: nothing is stored
        metas = self._metas()
        return [metas[r.id].status if r.id in metas else states.PENDING for r in self.results]

    def ready(self) -> bool:
        return all(s in states.READY_STATES for s in self._states())

    def successful(self) -> bool:
        return all(s == states.SUCCESS for s in self._states())

    def failed(self) -> bool:
        return any(s == states.FAILURE for s in self._states())

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        return sum(1 for s in self._states() if s == states.SUCCESS)

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Revoke every task of the set (and of the results they link back to)."""
        self.app.control.revoke(self.graph_ids(), terminate=terminate, signal=signal)

    def graph_ids(self) -> list[str]:
        ids: list[str] = []
        for result in self.results:
            ids += [i for i in result.graph_ids() if i not in ids]
        parent = getattr(self, "parent", None)
        if parent is not None:
            ids += [i for i in parent.graph_ids() if i not in ids]
        return ids

    def _raise_if_failed(self) -> None:
        """Re-raise the first failure among the results (one query for all of them)."""
        parent = getattr(self, "parent", None)
        if parent is not None:
            parent._raise_if_failed()
        metas = self._metas()
        for result in self.results:
            meta = metas.get(result.id)
            if meta is not None and meta.status in states.PROPAGATE_STATES:
                raise _as_exception(self.app.backend.decode(meta), meta)

    def forget(self) -> None:
        self.app.backend.forget([r.id for r in self.results])

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[..., Any] | None = None,
        no_ack: bool = True,
        on_message: Any = None,
        disable_sync_subtasks: bool = True,
        on_interval: Any = None,
    ) -> list[Any]:
        """Wait for every result; return them in order (re-raising the first error)."""
        return self.join(
            timeout, propagate, interval, callback, disable_sync_subtasks=disable_sync_subtasks
        )

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[..., Any] | None = None,
        no_ack: bool = True,
        on_message: Any = None,
        on_interval: Any = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        if self.results and all(isinstance(r, EagerResult) for r in self.results):
            return [r.get(propagate=propagate) for r in self.results]
        ids = [r.id for r in self.results]
        holder: dict[str, ResultMeta] = {}

        def all_ready() -> bool:
            holder.clear()
            holder.update(self._metas())
            return all(i in holder and holder[i].ready for i in ids)

        if not all_ready():
            _require_not_blocking(disable_sync_subtasks)
            self.app.backend.wait_for(ids, timeout, interval, all_ready)
        values = []
        for result in self.results:
            meta = holder[result.id]
            value = self.app.backend.decode(meta)
            if propagate and meta.status in states.PROPAGATE_STATES:
                raise _as_exception(value, meta)
            if callback is not None:
                callback(result.id, value)
            values.append(value)
        return values

    join_native = join


class GroupResult(ResultSet):
    """The results of a group, in group order."""

    def __init__(
        self,
        id: str | None = None,
        results: Sequence[AsyncResult] = (),
        parent: AsyncResult | None = None,
        app: Celery | None = None,
    ) -> None:
        super().__init__(results, app=app)
        self.id = id
        self.parent = parent

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def save(self, backend: Any = None) -> GroupResult:
        """Remember this group in the database so ``GroupResult.restore(id)`` finds it."""
        assert self.id is not None, "a GroupResult needs an id to be saved"
        self.app.backend.save_group(self.id, [r.id for r in self.results])
        return self

    def delete(self, backend: Any = None) -> None:
        assert self.id is not None
        self.app.backend.delete_group(self.id)

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: Celery | None = None) -> GroupResult | None:
        """Load a saved group by id (None when unknown)."""
        app = app or _state.get_current_app()
        task_ids = app.backend.restore_group(id)
        if task_ids is None:
            return None
        return cls(id, [AsyncResult(t, app=app) for t in task_ids], app=app)

    @property
    def children(self) -> list[AsyncResult]:
        return self.results


def result_from_tuple(value: Any, app: Celery | None = None) -> AsyncResult:
    """Rebuild an AsyncResult from ``as_tuple()``."""
    (task_id, parent), _ = value
    return AsyncResult(task_id, app=app, parent=result_from_tuple(parent, app) if parent else None)


__all__ = [
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "allow_join_result",
    "result_from_tuple",
]
