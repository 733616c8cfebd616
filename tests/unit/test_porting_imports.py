"""A Celery tasks module ports by changing ``celery`` to ``celeriac`` in its imports."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import pytest

# What task modules and their callers import from Celery, by module.
CELERY_IMPORTS = {
    "": "Celery shared_task signature chain group chord chunks states Task current_app "
    "current_task uuid maybe_signature",
    ".result": "AsyncResult GroupResult EagerResult ResultSet allow_join_result",
    ".exceptions": "Retry Ignore Reject MaxRetriesExceededError SoftTimeLimitExceeded "
    "TimeLimitExceeded WorkerLostError TaskRevokedError TimeoutError NotRegistered "
    "ImproperlyConfigured ChordError TaskError CeleryError",
    ".states": "PENDING STARTED SUCCESS FAILURE RETRY REVOKED READY_STATES UNREADY_STATES "
    "EXCEPTION_STATES PROPAGATE_STATES",
    ".signals": "task_prerun task_postrun task_success task_failure task_retry task_revoked "
    "worker_ready worker_process_init worker_shutdown before_task_publish after_task_publish "
    "setup_logging after_setup_logger celeryd_init",
    ".schedules": "crontab schedule",
    ".utils": "uuid",
    ".utils.log": "get_task_logger get_logger",
}


@pytest.mark.parametrize(("module", "names"), sorted(CELERY_IMPORTS.items()))
def test_celery_names_exist_under_celeriac(module: str, names: str) -> None:
    imported = importlib.import_module(f"celeriac{module}")
    missing = [name for name in names.split() if not hasattr(imported, name)]
    assert missing == [], f"celeriac{module} lacks {missing}"


def test_current_task_is_a_proxy_bound_at_import_time() -> None:
    from celeriac import Celery, current_task

    app = Celery("proxy", task_always_eager=True)
    assert not current_task

    @app.task
    def who() -> Any:
        return [current_task.name, current_task.request.id]

    assert who.apply_async(task_id="abc").get() == [who.name, "abc"]
    with pytest.raises(AttributeError, match="no task is running"):
        _ = current_task.request


def test_get_task_logger_propagates_to_the_task_logger(caplog: pytest.LogCaptureFixture) -> None:
    from celeriac.utils.log import get_task_logger

    logger = get_task_logger("myproj.tasks.porting")
    assert logger.name == "myproj.tasks.porting"
    assert logger.parent is logging.getLogger("celeriac.task")
    with caplog.at_level(logging.INFO):
        logger.info("hello from a task")
    assert "hello from a task" in caplog.text
