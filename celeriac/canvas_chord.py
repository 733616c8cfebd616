"""Chords: a header group whose results, in header order, are passed to a body.

The join is a counter row in PostgreSQL created with the header's messages (see
``celeriac.chords``): no polling ``chord_unlock`` task. A chord's options apply to its
header tasks and its body; ``link`` / ``link_error`` and its membership of an outer
group or chain (``group_id``, ``chord``, ``chain``) belong to the body only; a
countdown/eta delays the header, not the body (Celery #7851).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature, maybe_signature
from celeriac.canvas_plan import Planner
from celeriac.canvas_workflows import _as_list, _sig, _top, _Workflow, chain, group

if TYPE_CHECKING:
    from celeriac.app import Celery

_BODY = ("group_id", "group_index", "chord", "chain")  # options of a chord's body only


class _chord(_Workflow):
    """A header group whose results (in header order) are passed to the body.

    The join is a counter row in PostgreSQL (see ``celeriac.chords``).
    """

    def __init__(
        self,
        header: Any,
        body: Any = None,
        task: str = "celery.chord",
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        app: Celery | None = None,
        **options: Any,
    ) -> None:
        if isinstance(header, dict) and not isinstance(header, group):
            header = _sig(header, app)
        header = header if isinstance(header, group) else group(header, app=app)
        fields = {**(kwargs or {"kwargs": {}}), "header": header, "body": maybe_signature(body)}
        super().__init__(task, args, fields, options, app=app)
        self["subtask_type"] = "chord"

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celery | None = None) -> _chord:
        fields = dict(data["kwargs"])
        header, body = fields.pop("header"), fields.pop("body", None)
        return cls(
            _sig(header, app),
            _sig(body, app) if body is not None else None,
            args=data.get("args"),
            kwargs=fields,
            app=app,
            **data.get("options", {}),
        )

    @property
    def tasks(self) -> group:
        return self["kwargs"]["header"]  # type: ignore[no-any-return]

    header = tasks

    @property
    def app(self) -> Celery:
        if self._app is None:
            return (self.body or self.header).app
        return self._app

    @property
    def body(self) -> Signature:
        return self["kwargs"]["body"]  # type: ignore[no-any-return]

    @body.setter
    def body(self, value: Signature) -> None:
        self["kwargs"]["body"] = value

    def parts(self) -> list[Signature]:
        return [self.header, self.body]

    def link(self, callback: Signature) -> Signature:
        return self.body.link(callback)

    def link_error(self, errback: Signature) -> Signature:
        """On the body (it fires on a ChordError); with ``task_allow_error_cb_on_chord_header``
        also on every header task (immutable), as Celery."""
        if self.app.conf.get("task_allow_error_cb_on_chord_header"):
            for task in self.header.members():
                task.link_error(errback.clone().set(immutable=True))
        self.body.link_error(errback)
        return errback

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
        header_result = self.header.freeze(root_id=root_id)
        body_result = self.body.freeze(
            _id, group_id=group_id, chord=chord, root_id=root_id, group_index=group_index
        )
        top = _top(body_result)
        if top is not header_result and top.parent is None:
            top.parent = header_result
        return body_result

    def build(
        self, planner: Planner, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        options = {**self.options, **options}
        body = self.body
        if body is None:
            raise TypeError("a chord needs a body: chord(header, body) or chord(header)(body)")
        for callback in _as_list(options.pop("link", None)):
            body.link(callback)
        for errback in _as_list(options.pop("link_error", None)):
            self.link_error(_sig(errback, self._app))
        task_id = options.pop("task_id", None)
        body_only = {key: options.pop(key) for key in _BODY if key in options}
        for key in ("countdown", "eta"):  # delay the header, not the body (Celery #7851)
            body_only.pop(key, None)
        body.options.update({**_without(options, ("countdown", "eta")), **body_only})
        result = self.freeze(task_id, root_id=options.get("root_id"))
        if not self.immutable:
            args = [*args, *self.args]
        header_ids = [r.id for r in _top(result).results]
        if not header_ids:
            planner.add(body, [[]])
            return result
        planner.chord(self.header.options["task_id"], header_ids, body)
        self.header.build(planner, args, kwargs, {**options, "chord": body})
        return result

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Run the header, then the body, here (``task_always_eager``)."""
        values = self.header.apply(args, kwargs).get()
        return self.body.clone().apply([values])

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None:
            self.body = _sig(body, self._app)
        return self.apply_async((), {}, **options)

    def __or__(self, other: Any) -> Any:
        if isinstance(other, Signature) and not isinstance(other, group | chain):
            sig = self.clone()
            assert isinstance(sig, _chord)
            sig.body = sig.body | other
            return sig
        return chain(self, other, app=self._app)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"


chord = _chord


def _without(options: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key not in keys}


__all__ = ["chord"]
