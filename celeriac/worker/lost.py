"""The outcome of a job whose process died, hit its hard time limit or was cut off.

Decided in the worker's main process (a dead pool child, a cold shutdown) or by the
maintenance leader (a dead worker): Celery's acknowledgement rules say whether the job
runs again or ends FAILURE, and in the latter case its on_failure handler and errbacks
run here — where an error in them is logged, never allowed to stop the recording.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celeriac import states
from celeriac.exceptions import ContentDisallowed, DecodeError, NotRegistered, WorkerLostError
from celeriac.message import Job
from celeriac.task import ExceptionInfo
from celeriac.worker.body import RunResult
from celeriac.worker.executor import Execution, Outcome

if TYPE_CHECKING:
    from celeriac.app import Celery

logger = logging.getLogger("celeriac.worker.executor")


def lost(
    app: Celery, job: Job, hostname: str, exc: BaseException, whole_worker: bool = False
) -> Outcome:
    """The outcome of a job whose process died or hit its hard time limit.

    A job cut off by the death of a pool child is queued again when its task is
    ``acks_late`` and ``reject_on_worker_lost``; when the whole worker died (its claim was
    never acknowledged) an ``acks_late`` job is always queued again, as a broker
    redelivers an unacked message. Otherwise it ends FAILURE with ``exc``
    (WorkerLostError / TimeLimitExceeded) and its errbacks run.
    """
    execution = Execution(app, job, hostname)
    try:
        execution.body = execution.decode()
        task = execution.task = execution.resolve()
    except (DecodeError, ContentDisallowed, NotRegistered):
        return execution.finished(states.FAILURE, exc, traceback=repr(exc))
    acks_late = task.acks_late if task.acks_late is not None else job.acks_late
    requeue = (
        task.reject_on_worker_lost
        if task.reject_on_worker_lost is not None
        else job.reject_on_worker_lost
    )
    if isinstance(exc, WorkerLostError) and acks_late and (requeue or whole_worker):
        logger.warning(
            "Task %s[%s]: %s; queued again (%s)",
            job.task_name,
            job.task_id,
            exc,
            "acks_late, reject_on_worker_lost" if requeue else "acks_late: never acknowledged",
            extra=execution._extra("requeued"),
        )
        return Outcome(
            job.id,
            job.attempt,
            job.task_id,
            job.task_name,
            "requeue",
            states.PENDING,
            store=False,
            retry=False,
        )
    request = execution.request_context()
    einfo = ExceptionInfo(exc)
    einfo.traceback = f"{type(exc).__name__}: {exc}"
    task.push_request(request.as_dict())
    try:
        return execution.on_failure(task, request, RunResult(states.FAILURE, exc=exc, einfo=einfo))
    except Exception:
        logger.exception("Task %s[%s]: on_failure or an errback raised", job.task_name, job.task_id)
        return execution.finished(states.FAILURE, exc, traceback=einfo.traceback)
    finally:
        task.pop_request()


__all__ = ["lost"]
