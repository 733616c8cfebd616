"""Signatures: a task call as plain data (a dict), with Celery's merge rules.

A signature serializes to JSON as ``{"task", "args", "kwargs", "options",
"subtask_type", "immutable"}`` and survives a round trip through the database.
Calling ``sig.apply_async(args, kwargs, **options)`` prepends ``args`` to the stored
args, merges kwargs and options with the call-time values winning; an immutable
signature ignores extra args and kwargs (options still merge).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celeriac import _state

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.result import AsyncResult as _AsyncResult


class Signature(dict[str, Any]):
    """A task invocation that can be passed around, stored and called later."""

    def __init__(
        self,
        task: Any = None,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        type: Any = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Celery | None = None,
        **ex: Any,
    ) -> None:
        self._app = app
        if isinstance(task, dict):
            super().__init__(task)
            self.setdefault("args", [])
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("subtask_type", None)
            self.setdefault("immutable", False)
            self["args"] = list(self["args"])
            return
        name = task if isinstance(task, str) or task is None else task.name
        self._type = None if isinstance(task, str) or task is None else task
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options={**(options or {}), **ex},
            subtask_type=subtask_type,
            immutable=immutable,
        )

    # dict fields as attributes, as Celery's Signature ----------------------------
    @property
    def task(self) -> str:
        return str(self["task"])

    @property
    def name(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[Any]:
        return list(self["args"])

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self["kwargs"])

    @property
    def options(self) -> dict[str, Any]:
        return self["options"]  # type: ignore[no-any-return]

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def subtask_type(self) -> str | None:
        return self.get("subtask_type")

    @property
    def id(self) -> str | None:
        return self.options.get("task_id")

    @property
    def app(self) -> Celery:
        return self._app or _state.get_current_app()

    @property
    def type(self) -> Any:
        """The registered Task for this signature."""
        return self.app.tasks[self.task]

    # merging ---------------------------------------------------------------------
    def _merge(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        merged_options = {**self.options, **(options or {})}
        if self.immutable:
            return self.args, self.kwargs, merged_options
        return (
            [*(args or ()), *self.args],
            {**self.kwargs, **(kwargs or {})},
            merged_options,
        )

    def clone(
        self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **opts: Any
    ) -> Signature:
        """A copy with ``args`` prepended and kwargs/options merged."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, opts)
        sig = Signature(
            self.task,
            new_args,
            new_kwargs,
            copy.deepcopy(new_options),
            subtask_type=self.subtask_type,
            immutable=self.immutable,
            app=self._app,
        )
        for key, value in self.items():
            if key not in sig:
                sig[key] = copy.deepcopy(value)
        return sig

    def replace(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Signature:
        """A copy with args, kwargs or options replaced (not merged)."""
        sig = self.clone()
        if args is not None:
            sig["args"] = list(args)
        if kwargs is not None:
            sig["kwargs"] = dict(kwargs)
        if options is not None:
            sig["options"] = dict(options)
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set options in place; return self."""
        if immutable is not None:
            self["immutable"] = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Assign a task id now (without sending) and return its AsyncResult."""
        opts = self.options
        if _id is not None:
            opts["task_id"] = _id
        opts.setdefault("task_id", str(uuid.uuid4()))
        for key, value in (
            ("group_id", group_id),
            ("chord", chord),
            ("group_index", group_index),
            ("root_id", root_id),
            ("parent_id", parent_id),
        ):
            if value is not None:
                opts[key] = value
        return self.AsyncResult(opts["task_id"])

    def AsyncResult(self, task_id: str) -> _AsyncResult:
        from celeriac.result import AsyncResult

        return AsyncResult(task_id, app=self.app, task_name=self.task)

    # linking ---------------------------------------------------------------------
    def link(self, callback: Signature) -> Signature:
        """Add a callback run after success; return the callback."""
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Add an errback run after failure; return the errback."""
        self.options.setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """Add an errback; return this signature (for chaining)."""
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Any:
        from celeriac import canvas_workflows

        return canvas_workflows.join_with_or(self, other)

    # calling -------------------------------------------------------------------------
    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> _AsyncResult:
        """Send the task with ``args`` prepended; call-time kwargs and options win."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        task = self.app.tasks.get(self.task)
        if task is not None:
            return task.apply_async(new_args, new_kwargs, **new_options)
        return self.app.send_task(self.task, new_args, new_kwargs, **new_options)

    def delay(self, *args: Any, **kwargs: Any) -> _AsyncResult:
        """``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the task in this process and return an EagerResult."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        return self.type.apply(new_args, new_kwargs, **new_options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task body in this process (no message) and return its value."""
        new_args, new_kwargs, _ = self._merge(args, kwargs)
        return self.type(*new_args, **new_kwargs)

    def __invert__(self) -> Any:
        return self.apply_async().get()

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        sig = Signature(dict(copy.deepcopy(dict(self), memo)), app=self._app)
        return sig

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        args = ", ".join(
            [*(repr(a) for a in self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())]
        )
        return f"{self.task}({args}){'!' if self.immutable else ''}"

    def __reduce__(self) -> Any:
        return (_rebuild, (dict(self),))


def _rebuild(data: dict[str, Any]) -> Signature:
    return signature(data)


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Create a signature from a name, a task, or a dict (``celeriac.signature``)."""
    app = kwargs.pop("app", None)
    if isinstance(varies, dict):
        if isinstance(varies, Signature):
            return varies.clone()
        from celeriac import canvas_workflows

        return canvas_workflows.from_dict(varies, app=app)
    kwargs["app"] = app
    return Signature(varies, *args, **kwargs)


def maybe_signature(value: Any, app: Celery | None = None) -> Signature | None:
    """A Signature from a Signature, a dict, or None."""
    if value is None:
        return None
    if isinstance(value, Signature):
        return value
    return signature(value, app=app)


subtask = signature

__all__ = ["Signature", "maybe_signature", "signature", "subtask"]
