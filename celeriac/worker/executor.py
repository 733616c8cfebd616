"""Running one job, as a pipeline of named steps.

    decode → resolve task → check revoked/expired → request context → prerun
    → call (under the pool's time limits) → classify the outcome → handlers → postrun

Each step is a method; none of them talks to the job table. The result is an
``Outcome`` — plain, picklable data the worker's completer records in one batched
transaction together with the callbacks it publishes. The same steps run in every pool
(in a prefork child, a thread, or the main thread for solo) and, without storage, for
``apply()`` / ``task_always_eager``.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from celeriac import _state, serialization, signals, states, task_sends
from celeriac.exceptions import (
    ContentDisallowed,
    DatabaseError,
    DecodeError,
    EncodeError,
    NotRegistered,
    TaskRevokedError,
)
from celeriac.message import (
    Body,
    ChordJoin,
    FinalState,
    Job,
    Message,
    decode_body,
    pack_time,
    unpack_time,
)
from celeriac.task import Context, ExceptionInfo, Task
from celeriac.worker import callbacks
from celeriac.worker.body import Guard, RunResult, retry_target, run_body

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker.executor")

# message headers that are request attributes as they are (Execution.request_context)
_HEADER_NAMES = frozenset(
    "lang task id shadow eta expires group group_index retries timelimit root_id parent_id "
    "argsrepr kwargsrepr origin ignore_result replaced_task_nesting stamped_headers stamps "
    "reply_to correlation_id".split()
)

# the handler of each state a body ends in (Execution.classify)
_HANDLERS = {
    states.SUCCESS: "on_success",
    states.RETRY: "on_retry",
    states.FAILURE: "on_failure",
    states.IGNORED: "on_ignored",
    states.REJECTED: "on_rejected",
}


@dataclass(slots=True)
class Outcome:
    """What became of a job; recorded by the worker's completer."""

    job_id: int
    attempt: int
    task_id: str
    task_name: str
    kind: str  # "finish" | "requeue" | "bury"
    status: str
    content_type: str = serialization.JSON
    result: bytes | None = None
    traceback: str | None = None
    store: bool = True
    retry: bool = False
    eta: dt.datetime | None = None
    body: bytes | None = None
    queue: str | None = None
    error: str | None = None
    runtime: float = 0.0
    date_started: dt.datetime | None = None
    publish: list[Message] = field(default_factory=list)
    errbacks: list[dict[str, Any]] = field(default_factory=list)
    chords: list[ChordJoin] = field(default_factory=list)  # chords started (chain steps)
    marks: list[FinalState] = field(default_factory=list)  # steps of a chain that won't run

    def __reduce__(self) -> tuple[Callable[..., Outcome], tuple[Any, ...]]:
        # pickled once per job on its way back from a prefork child (see Job.__reduce__);
        # most outcomes are a plain end (no retry, nothing published): ten fields fewer
        if (
            not self.retry
            and self.eta is None
            and self.body is None
            and self.queue is None
            and self.error is None
            and not (self.publish or self.errbacks or self.chords or self.marks)
        ):
            return (_plain, (*_plain_fields(self), pack_time(self.date_started)))
        values = list(_outcome_fields(self))
        values[_ETA], values[_STARTED] = pack_time(self.eta), pack_time(self.date_started)
        return (_outcome, tuple(values))


def untouched(job: Job, eta: dt.datetime | None = None) -> Outcome:
    """A claimed job going back to the queue as it was (no result, no retry counted):
    never started, given back on shutdown, or delayed by a rate limit (to ``eta``)."""
    return Outcome(
        job.id,
        job.attempt,
        job.task_id,
        job.task_name,
        "requeue",
        "PENDING",
        store=False,
        retry=False,
        eta=eta,
    )


_outcome_fields = operator.attrgetter(*(f.name for f in fields(Outcome)))
_ETA, _STARTED = ([f.name for f in fields(Outcome)].index(name) for name in ("eta", "date_started"))


_plain_fields = operator.attrgetter(
    "job_id",
    "attempt",
    "task_id",
    "task_name",
    "kind",
    "status",
    "content_type",
    "result",
    "traceback",
    "store",
    "runtime",
)


def _plain(*values: Any) -> Outcome:
    outcome = Outcome(*values[:10])
    outcome.runtime, outcome.date_started = values[10], unpack_time(values[11])
    return outcome


def _outcome(*values: Any) -> Outcome:
    outcome = Outcome(*values)
    outcome.eta, outcome.date_started = unpack_time(outcome.eta), unpack_time(outcome.date_started)
    return outcome


class Execution:
    """One job going through the steps; ``run()`` returns its Outcome."""

    def __init__(self, app: Celery, job: Job, hostname: str, guard: Guard | None = None) -> None:
        self.app = app
        self.job = job
        self.hostname = hostname
        self.guard: Guard = guard or (lambda soft, hard: nullcontext())
        self.started = dt.datetime.now(dt.UTC)
        self.task: Task | None = None
        self.body: Body | None = None

    def run_safely(self) -> Outcome:
        """``run()``, but an error in celeriac's own steps or a handler becomes a FAILURE
        outcome instead of escaping (it would cost a pool process and the job)."""
        try:
            return self.run()
        except Exception as exc:
            return self.internal_error(exc)

    def run(self) -> Outcome:
        try:
            self.body = self.decode()
        except (DecodeError, ContentDisallowed) as exc:
            return self.buried(exc)
        try:
            self.task = self.resolve()
        except NotRegistered as exc:
            return self.unregistered(exc)
        refusal = self.check_revoked()
        if refusal is not None:
            return refusal
        request = self.request_context()
        return self.execute(request)

    # -- steps --------------------------------------------------------------------------
    def decode(self) -> Body:
        return decode_body(self.job, self.app.accept_content)

    def resolve(self) -> Task:
        return self.app.tasks[self.job.task_name]

    def check_revoked(self) -> Outcome | None:
        expired = self.job.expires is not None and self.job.expires < dt.datetime.now(dt.UTC)
        if not (self.job.revoked or expired):
            return None
        reason = "expired" if expired and not self.job.revoked else "revoked"
        logger.info(
            "Discarding revoked task: %s[%s] (%s)",
            self.job.task_name,
            self.job.task_id,
            reason,
            extra=self._extra("revoked"),
        )
        signals.task_revoked.send(
            sender=self.task, request=self.job, terminated=False, signum=None, expired=expired
        )
        exc = TaskRevokedError(reason)
        outcome = self.finished(states.REVOKED, exc)
        chain = self.body.embed.get("chain") if self.body is not None else None
        outcome.marks = callbacks.rest_of_chain(self.app, chain, states.REVOKED, exc, None)
        return outcome

    def request_context(self) -> Context:
        job, body = self.job, self.body
        assert body is not None
        headers, embed = job.headers, body.embed
        timelimit = headers.get("timelimit") or [None, None]
        if headers.keys() <= _HEADER_NAMES:  # what celeriac's and Celery's clients write
            values = dict(headers)
        else:  # other headers: only names that can be attributes of the request
            values = {key: value for key, value in headers.items() if key.isidentifier()}
        values.update(
            {
                "id": job.task_id,
                "task": job.task_name,
                "args": body.args,
                "kwargs": body.kwargs,
                "retries": job.retries,
                "is_eager": False,
                "called_directly": False,
                "eta": job.eta.isoformat() if job.eta else None,
                "expires": job.expires.isoformat() if job.expires else None,
                "hostname": self.hostname,
                "correlation_id": job.task_id,
                "delivery_info": {
                    "exchange": "",
                    "routing_key": job.queue,
                    "priority": job.priority,
                    "redelivered": job.attempt > 1,
                },
                "headers": headers,
                "timelimit": tuple(timelimit),
                "callbacks": embed.get("callbacks"),
                "errbacks": embed.get("errbacks"),
                "chain": embed.get("chain"),
                "chord": embed.get("chord"),
                "job_id": job.id,
                "attempt": job.attempt,
            }
        )
        return Context.of(values)

    def execute(self, request: Context) -> Outcome:
        task = self.task
        assert task is not None and self.body is not None
        # this request itself, not a copy, as Celery's trace pushes it: a task that sets
        # ``self.request.chain = None`` (or ``callbacks``) stops its workflow there
        task._requests_stack().append(request)
        _state.push_task(task)
        try:
            began = time.monotonic()
            ran = self.call(task, request)
            runtime = time.monotonic() - began
            try:
                outcome = self.classify(task, request, ran, runtime)
            except Exception as exc:  # a handler (on_success...) or a callback failed
                outcome = self.internal_error(exc)
            task_sends.attach(task.request, outcome)
            self.postrun(task, request, ran)
            return outcome
        finally:
            _state.pop_task()
            task.pop_request()

    def call(self, task: Task, request: Context) -> RunResult:
        """prerun, then the body under the limits; a failing prerun fails the task."""
        assert self.body is not None
        try:
            self.prerun(task, request)
        except Exception as exc:
            return RunResult(states.FAILURE, exc=exc, einfo=ExceptionInfo(exc))
        return run_body(
            task, self.body.args, self.body.kwargs, self.limits(task, request), self.guard
        )

    def limits(self, task: Task, request: Context) -> tuple[float | None, float | None]:
        hard, soft = request.timelimit or (None, None)
        return (
            hard if hard is not None else task.time_limit,
            soft if soft is not None else task.soft_time_limit,
        )

    def prerun(self, task: Task, request: Context) -> None:
        assert self.body is not None
        signals.task_prerun.send(
            sender=task, task_id=request.id, task=task, args=self.body.args, kwargs=self.body.kwargs
        )
        if task.track_started and not self._ignore_result(task):
            self.store_started(task)
        task.before_start(self.job.task_id, self.body.args, self.body.kwargs)

    def store_started(self, task: Task) -> None:
        """Store STARTED; informational, so a database hiccup only costs a warning."""
        try:
            task.app.backend.store_state(
                self.job.task_id,
                states.STARTED,
                {"pid": os.getpid(), "hostname": self.hostname},
                name=task.name,
                worker=self.hostname,
                date_started=self.started,
            )
        except DatabaseError as exc:
            logger.warning("Task %s[%s]: cannot store STARTED: %s", task.name, task.request.id, exc)

    def classify(self, task: Task, request: Context, ran: RunResult, runtime: float) -> Outcome:
        handler: Callable[[Task, Context, RunResult], Outcome]
        handler = getattr(self, _HANDLERS[ran.state])
        outcome = handler(task, request, ran)
        outcome.runtime = runtime
        self.log_outcome(outcome, ran)
        return outcome

    def log_outcome(self, outcome: Outcome, ran: RunResult) -> None:
        """Celery's log lines: succeeded (with runtime), raised, retry."""
        if outcome.status == states.SUCCESS and not logger.isEnabledFor(logging.INFO):
            return  # the hot path of short tasks: no repr of the result, no extra dict
        name, task_id, extra = self.job.task_name, self.job.task_id, self._extra(ran.state)
        if outcome.status == states.SUCCESS:
            logger.info(
                "Task %s[%s] succeeded in %.3fs: %s",
                name,
                task_id,
                outcome.runtime,
                _short(ran.retval),
                extra=extra,
            )
        elif outcome.status == states.FAILURE and ran.exc is not None:
            logger.error(
                "Task %s[%s] raised unexpected: %r\n%s",
                name,
                task_id,
                ran.exc,
                ran.einfo.traceback if ran.einfo else "",
                extra=extra,
            )
        elif outcome.status == states.RETRY and ran.retry is not None:
            logger.info("Task %s[%s] retry: %s", name, task_id, ran.retry, extra=extra)

    def postrun(self, task: Task, request: Context, ran: RunResult) -> None:
        assert self.body is not None
        signals.task_postrun.send(
            sender=task,
            task_id=request.id,
            task=task,
            args=self.body.args,
            kwargs=self.body.kwargs,
            retval=ran.retval if ran.exc is None else ran.exc,
            state=ran.state,
        )

    # -- outcomes ---------------------------------------------------------------------------
    def on_success(self, task: Task, request: Context, ran: RunResult) -> Outcome:
        assert self.body is not None
        try:
            outcome = self.finished(states.SUCCESS, ran.retval, store=not self._ignore_result(task))
        except EncodeError as exc:
            failed = RunResult(states.FAILURE, exc=exc, einfo=ExceptionInfo(exc))
            return self.on_failure(task, request, failed)
        plan = callbacks.on_success(task.app, request, ran.retval)
        outcome.publish, outcome.chords = plan.messages, plan.chords
        task.on_success(ran.retval, self.job.task_id, self.body.args, self.body.kwargs)
        signals.task_success.send(sender=task, result=ran.retval)
        self._after_return(task, states.SUCCESS, ran.retval, None)
        return outcome

    def on_failure(self, task: Task, request: Context, ran: RunResult) -> Outcome:
        assert self.body is not None and ran.exc is not None and ran.einfo is not None
        store = not self._ignore_result(task) or bool(task.store_errors_even_if_ignored)
        outcome = self.finished(states.FAILURE, ran.exc, traceback=ran.einfo.traceback, store=store)
        plan = callbacks.on_failure(task.app, request, ran.exc, ran.einfo.traceback)
        outcome.publish, outcome.marks = plan.messages, plan.marks
        task.on_failure(ran.exc, self.job.task_id, self.body.args, self.body.kwargs, ran.einfo)
        signals.task_failure.send(
            sender=task,
            task_id=self.job.task_id,
            exception=ran.exc,
            args=self.body.args,
            kwargs=self.body.kwargs,
            traceback=ran.exc.__traceback__,
            einfo=ran.einfo,
        )
        self._after_return(task, states.FAILURE, ran.exc, ran.einfo)
        return outcome

    def on_retry(self, task: Task, request: Context, ran: RunResult) -> Outcome:
        assert self.body is not None and ran.retry is not None
        retry = ran.retry
        reason = retry.exc if retry.exc is not None else retry
        einfo = ExceptionInfo(reason)
        eta, body = retry_target(task, retry, self.job)
        outcome = Outcome(
            self.job.id,
            self.job.attempt,
            self.job.task_id,
            self.job.task_name,
            "requeue",
            states.RETRY,
            content_type=task.app.backend.content_type,
            result=task.app.backend.encode(reason),
            traceback=einfo.traceback,
            store=not self._ignore_result(task),
            retry=True,
            eta=eta,
            body=body,
            queue=(retry.sig.options.get("queue") if retry.sig is not None else None),
            date_started=self.started,
        )
        task.on_retry(reason, self.job.task_id, self.body.args, self.body.kwargs, einfo)
        signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)
        self._after_return(task, states.RETRY, reason, einfo)
        return outcome

    def on_ignored(self, task: Task, request: Context, ran: RunResult) -> Outcome:
        return self.finished(states.IGNORED, None, store=False)

    def on_rejected(self, task: Task, request: Context, ran: RunResult) -> Outcome:
        if ran.requeue:
            return Outcome(
                self.job.id,
                self.job.attempt,
                self.job.task_id,
                self.job.task_name,
                "requeue",
                states.REJECTED,
                store=False,
                retry=False,
            )
        return self.finished(states.REJECTED, None, store=False)

    def finished(
        self, status: str, value: Any, traceback: str | None = None, store: bool = True
    ) -> Outcome:
        backend = self.app.backend
        return Outcome(
            self.job.id,
            self.job.attempt,
            self.job.task_id,
            self.job.task_name,
            "finish",
            status,
            content_type=backend.content_type,
            result=backend.encode(value) if store else None,
            traceback=traceback,
            store=store,
            date_started=self.started,
        )

    def buried(self, exc: Exception) -> Outcome:
        reason = f"{type(exc).__name__}: {exc}"
        logger.error(
            "Cannot decode task %s[%s]; moved to the dead-letter state: %s",
            self.job.task_name,
            self.job.task_id,
            reason,
            extra=self._extra("buried"),
        )
        signals.task_rejected.send(sender=None, message=self.job, exc=exc)
        outcome = self.finished(states.FAILURE, exc, traceback=reason)
        outcome.kind, outcome.error = "bury", reason
        return outcome

    def unregistered(self, exc: NotRegistered) -> Outcome:
        logger.error(
            "Received unregistered task of type %r (id %s): %s",
            self.job.task_name,
            self.job.task_id,
            exc,
            extra=self._extra("unregistered"),
        )
        signals.task_unknown.send(
            sender=None, message=self.job, exc=exc, name=self.job.task_name, id=self.job.task_id
        )
        return self.finished(states.FAILURE, exc, traceback=f"NotRegistered: {exc}")

    def internal_error(self, exc: Exception) -> Outcome:
        """An error outside the task body: FAILURE with that error, logged loudly."""
        einfo = ExceptionInfo(exc)
        logger.error(
            "Task %s[%s] INTERNAL ERROR: %r\n%s",
            self.job.task_name,
            self.job.task_id,
            exc,
            einfo.traceback,
            extra=self._extra("internal_error"),
        )
        signals.task_internal_error.send(
            sender=self.task,
            task_id=self.job.task_id,
            args=self.body.args if self.body else None,
            kwargs=self.body.kwargs if self.body else None,
            request=self.job,
            exception=exc,
            traceback=exc.__traceback__,
            einfo=einfo,
        )
        try:
            return self.finished(states.FAILURE, exc, traceback=einfo.traceback)
        except EncodeError:
            return self.finished(states.FAILURE, EncodeError(repr(exc)), traceback=einfo.traceback)

    # -- helpers ------------------------------------------------------------------------------
    def _ignore_result(self, task: Task) -> bool:
        if self.body is not None and self.body.embed.get("chord"):
            return False  # a chord part: the body needs its result
        return bool(task.ignore_result or self.job.headers.get("ignore_result"))

    def _after_return(self, task: Task, status: str, retval: Any, einfo: Any) -> None:
        assert self.body is not None
        task.after_return(status, retval, self.job.task_id, self.body.args, self.body.kwargs, einfo)

    def _extra(self, action: str) -> dict[str, Any]:
        return {"task_id": self.job.task_id, "task_name": self.job.task_name, "action": action}


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["Execution", "Guard", "Outcome", "RunResult", "run_body"]
