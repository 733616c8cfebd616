"""The app: configuration, the task registry, sending tasks by name, autodiscovery.

No SQL and no threads here: storage goes through ``app.broker`` / ``app.backend``, the
worker lives in ``celeriac.worker``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celeriac import _state, serialization, signals
from celeriac.backend import Backend
from celeriac.broker import Broker
from celeriac.canvas import Signature, maybe_signature
from celeriac.config import Settings, as_seconds, load_object
from celeriac.db.pool import Database
from celeriac.exceptions import ImproperlyConfigured, NotRegistered, PayloadTooLarge
from celeriac.message import ChordJoin, Message
from celeriac.publish import is_durable
from celeriac.result import AsyncResult, GroupResult
from celeriac.task import Task

logger = logging.getLogger(__name__)

_shared_tasks: list[Callable[[Celery], Task]] = []


class TaskRegistry(dict[str, Task]):
    """Tasks by name; a missing name raises NotRegistered naming it."""

    def __missing__(self, key: str) -> Task:
        raise NotRegistered(
            f"Task of kind {key!r} is not registered: is the module that "
            f"defines it imported by the worker (-A / include / imports)?"
        )


def gen_task_name(app: Celery, name: str, module: str) -> str:
    """Celery's default task name: ``module.function`` (``main`` for ``__main__``)."""
    if module == "__main__" and app.main:
        module = app.main
    return f"{module}.{name}"


class Celery:
    """A celeriac application (Celery's ``Celery`` class)."""

    def __init__(
        self,
        main: str | None = None,
        loader: Any = None,
        backend: str | None = None,
        amqp: Any = None,
        events: Any = None,
        log: Any = None,
        control: Any = None,
        set_as_current: bool = True,
        tasks: Any = None,
        broker: str | None = None,
        include: Iterable[str] | None = None,
        changes: Any = None,
        config_source: Any = None,
        fixups: Any = None,
        task_cls: type[Task] | str | None = None,
        autofinalize: bool = True,
        namespace: str | None = None,
        strict_typing: bool = True,
        **kwargs: Any,
    ) -> None:
        self.main = main
        self.conf = Settings()
        self.namespace = namespace
        self.strict_typing = strict_typing
        if broker:
            self.conf["broker_url"] = broker
        if backend:
            self.conf["result_backend"] = backend
        if include:
            self.conf["include"] = tuple(include)
        self.conf.update(kwargs)
        if config_source is not None:
            self.config_from_object(config_source)
        self.tasks = TaskRegistry()
        base = load_object(task_cls) if isinstance(task_cls, str) else task_cls
        django = _django_fixup()
        if base is None and django is not None:
            base = load_object("celeriac.contrib.django.task:DjangoTask")
        self.Task: type[Task] = type(
            "Task", (base or Task,), {"app": self, "abstract": True, "__module__": __name__}
        )
        self._pending_autodiscover: list[tuple[Any, str]] = []
        self._finalized = False
        self._lock = threading.RLock()
        self._db: Database | None = None
        self._result_db: Database | None = None
        self._broker: Broker | None = None
        self._backend: Backend | None = None
        self._control: Any = None
        self.on_after_configure = signals.Signal("on_after_configure")
        self.on_after_finalize = signals.Signal("on_after_finalize")
        self.on_after_fork = signals.Signal("on_after_fork")
        self._periodic: list[dict[str, Any]] = []
        # called when apply_async gets no connection=; returning one publishes on it
        # (the Django fixup returns Django's connection inside atomic())
        self.publish_connection: Callable[[], Any] | None = None
        if django is not None:
            django.install(self)
        _state.register_app(self)
        if set_as_current:
            _state.set_current_app(self)
        for make in _shared_tasks:
            make(self)
        from celeriac.builtins import register_builtins

        register_builtins(self)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"

    # configuration ------------------------------------------------------------------
    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Load settings from an object or ``'module'`` / ``'module:attr'`` path."""
        if isinstance(obj, str):
            try:
                obj = load_object(obj)
            except (ImportError, AttributeError):
                if silent:
                    return
                raise
        self.namespace = namespace or self.namespace
        self.conf.update_from(obj, namespace=self.namespace)

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> None:
        module = os.environ.get(variable_name)
        if not module:
            if silent:
                return
            raise ImproperlyConfigured(f"environment variable {variable_name!r} is not set")
        self.config_from_object(module, silent=silent)

    def add_defaults(self, defaults: Any) -> None:
        for key, value in (
            defaults.items() if isinstance(defaults, dict) else vars(defaults).items()
        ):
            self.conf.setdefault(key, value)

    def autodiscover_tasks(
        self, packages: Any = None, related_name: str = "tasks", force: bool = False
    ) -> None:
        """Import ``<package>.tasks`` for each package (Django apps when none given)."""
        self._pending_autodiscover.append((packages, related_name))
        if force:
            self.import_default_modules()

    def finalize(self, auto: bool = False) -> None:
        """Send ``on_after_configure`` then ``on_after_finalize``, once (worker and beat
        call it at start-up; ``add_periodic_task`` in such a handler is seen by beat)."""
        with self._lock:
            if self._finalized:
                return
            self._finalized = True
        self.on_after_configure.send(sender=self, source=self.conf)
        self.on_after_finalize.send(sender=self)

    def import_default_modules(self) -> None:
        """Import ``include``, ``imports`` and autodiscovered modules (the worker calls it)."""
        signals.import_modules.send(sender=self)
        for module in (*self.conf.get("imports", ()), *self.conf.get("include", ())):
            importlib.import_module(module)
        pending, self._pending_autodiscover = self._pending_autodiscover, []
        for packages, related_name in pending:
            for package in _resolve_packages(packages):
                _import_related(package, related_name)

    # tasks -------------------------------------------------------------------------
    def task(self, *args: Any, **opts: Any) -> Any:
        """Decorator making a task: ``@app.task`` or ``@app.task(bind=True, ...)``."""
        if len(args) == 1 and callable(args[0]) and not opts:
            return self._task_from_fun(args[0])
        if args:
            raise TypeError("@task() takes options as keyword arguments only")
        return lambda fun: self._task_from_fun(fun, **opts)

    def _task_from_fun(
        self,
        fun: Callable[..., Any],
        name: str | None = None,
        base: type[Task] | None = None,
        bind: bool = False,
        **options: Any,
    ) -> Task:
        name = name or gen_task_name(self, fun.__name__, fun.__module__)
        if name in self.tasks:
            existing = self.tasks[name]
            if getattr(existing, "__wrapped__", None) is fun:
                return existing
        base = base or self.Task
        if getattr(base, "app", None) is not self:
            base = type(base.__name__, (base,), {"app": self, "__module__": base.__module__})
        attrs = {
            "name": name,
            "run": fun if bind else staticmethod(fun),
            "_bound": bind,
            "_decorated": True,
            "__doc__": fun.__doc__,
            "__module__": fun.__module__,
            "__qualname__": fun.__qualname__,
            "__wrapped__": staticmethod(fun),
            "typing": options.pop("typing", self.strict_typing),
        }
        cls = type(fun.__name__, (base,), attrs)
        task: Task = cls()
        for key, value in options.items():
            setattr(task, key, value)
        task.__header__ = fun  # type: ignore[attr-defined]
        self.tasks[name] = task
        return task

    def register_task(self, task: Task | type[Task]) -> Task:
        """Register a class-based task."""
        instance = task() if isinstance(task, type) else task
        if not instance.name:
            instance.name = gen_task_name(self, type(instance).__name__, type(instance).__module__)
        instance.app = self
        self.tasks[instance.name] = instance
        return instance

    # storage -------------------------------------------------------------------------
    @property
    def database(self) -> Database:
        """The broker's database (migrated on first use)."""
        with self._lock:
            if self._db is None:
                url = self.conf.broker()
                if url is None:
                    from celeriac.embedded import embedded_url

                    url = embedded_url()
                self._db = Database(
                    url,
                    self.conf.celeriac_schema,
                    self.conf.broker_pool_limit,
                    float(self.conf.broker_connection_timeout),
                    float(self.conf.celeriac_dead_connection_timeout or 0),
                )
            return self._db

    @property
    def result_database(self) -> Database:
        with self._lock:
            if self._result_db is None:
                url = self.conf.backend()
                if url is None or url == self.database.url:
                    self._result_db = self.database
                else:
                    self._result_db = Database(
                        url,
                        self.conf.celeriac_schema,
                        self.conf.broker_pool_limit,
                        float(self.conf.broker_connection_timeout),
                        float(self.conf.celeriac_dead_connection_timeout or 0),
                    )
            return self._result_db

    def ensure_schema(self) -> None:
        """Create or upgrade celeriac's schema where needed (idempotent)."""
        from celeriac.db.migrate import ensure_current

        for db in {id(d): d for d in (self.database, self.result_database)}.values():
            if not db.migrated:
                with db.connection() as conn:
                    ensure_current(conn, db.schema)
                db.migrated = True

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self.ensure_schema()
            self._broker = Broker(self.database)
            self._broker.joiner = self._chord_joiner()
            self._broker.notify_values = bool(self.conf.celeriac_notify_results)
        return self._broker

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self.ensure_schema()
            self._backend = Backend(
                self.result_database,
                self.result_accept_content,
                serialization.content_type_of(self.conf.result_serializer),
                as_seconds(self.conf.result_expires) or 10 * 365 * 86400.0,
            )
            self._backend.joiner = self._chord_joiner()
        return self._backend

    def _chord_joiner(self) -> Any:
        from celeriac.chords import ChordJoiner

        return ChordJoiner(self)

    @property
    def accept_content(self) -> frozenset[str]:
        return serialization.accepted(self.conf.accept_content)

    @property
    def result_accept_content(self) -> frozenset[str]:
        return serialization.accepted(self.conf.result_accept_content or self.conf.accept_content)

    @property
    def control(self) -> Any:
        if self._control is None:
            from celeriac.control import Control

            self._control = Control(self)
        return self._control

    def close(self) -> None:
        """Close this process's connections (pools and result listeners)."""
        from celeriac.backend import ResultListener

        for db in (self._db, self._result_db):
            if db is not None:
                ResultListener.stop_for(db)
                db.close()

    # sending ---------------------------------------------------------------------------
    def send_task(
        self,
        name: str,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        task_id: str | None = None,
        producer: Any = None,
        connection: Any = None,
        router: Any = None,
        result_cls: Any = None,
        expires: Any = None,
        publisher: Any = None,
        link: Any = None,
        link_error: Any = None,
        add_to_parent: bool = True,
        group_id: str | None = None,
        group_index: int | None = None,
        retries: int = 0,
        chord: Any = None,
        reply_to: str | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        route_name: str | None = None,
        shadow: str | None = None,
        chain: Any = None,
        task_type: Task | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send a task by name (it need not be registered here); return its AsyncResult."""
        message = self.build_message(
            name,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            task_id=task_id,
            expires=expires,
            link=link,
            link_error=link_error,
            group_id=group_id,
            group_index=group_index,
            retries=retries,
            chord=chord,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            root_id=root_id,
            parent_id=parent_id,
            shadow=shadow,
            chain=chain,
            task_type=task_type,
            options=options,
        )
        sent_at = time.monotonic()
        self.publish(
            [message],
            connection=connection,
            retry=options.get("retry", self.conf.task_publish_retry),
            retry_policy=options.get("retry_policy"),
            durable=is_durable(options.get("delivery_mode", self.conf.task_default_delivery_mode)),
        )
        ignored = bool(
            options.get("ignore_result") or (task_type is not None and task_type.ignore_result)
        )
        parent = _state.current_task()
        if add_to_parent and parent is not None and parent.request.id:
            children = parent.request.__dict__.setdefault("children", [])
            children.append(message.task_id)
        result = AsyncResult(message.task_id, app=self, task_name=name, ignored=ignored)
        result._sent_at = sent_at
        return result

    def build_message(
        self,
        name: str,
        args: Iterable[Any] | None,
        kwargs: dict[str, Any] | None,
        *,
        options: dict[str, Any],
        task_type: Task | None = None,
        **fields: Any,
    ) -> Message:
        """Turn a call into a Message (no I/O); bad arguments fail here, nothing written."""
        from celeriac.publish import MessageBuilder

        return MessageBuilder(self).build(
            name, args, kwargs, options=options, task_type=task_type, **fields
        )

    def publish(
        self,
        messages: list[Message],
        connection: Any = None,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
        chords: Sequence[ChordJoin] = (),
        durable: bool = True,
    ) -> None:
        """Write messages (and the chords they start) in one statement, with the
        before/after_task_publish signals and publish retries (``celeriac.publish``)."""
        from celeriac.publish import Publisher

        Publisher(self).publish(messages, connection, retry, retry_policy, chords, durable)

    # results and signatures -----------------------------------------------------------------
    def AsyncResult(self, id: str, **kwargs: Any) -> AsyncResult:
        return AsyncResult(id, app=self, **kwargs)

    def GroupResult(self, id: str | None = None, results: Any = (), **kwargs: Any) -> GroupResult:
        return GroupResult(id, results, app=self, **kwargs)

    def signature(self, *args: Any, **kwargs: Any) -> Signature:
        kwargs["app"] = self
        if args and isinstance(args[0], dict):
            sig = maybe_signature(args[0], app=self)
            assert sig is not None
            return sig
        return Signature(*args, **kwargs)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    # periodic tasks (beat is the operations issue) --------------------------------------------
    def add_periodic_task(
        self,
        schedule: Any,
        sig: Signature,
        args: Any = (),
        kwargs: Any = (),
        name: str | None = None,
        **opts: Any,
    ) -> str:
        key = name or repr(sig)
        entry = {
            "schedule": schedule,
            "task": sig.name,
            "args": sig.args or list(args),
            "kwargs": sig.kwargs or dict(kwargs or {}),
            "options": {**sig.options, **opts},
        }
        self.conf.setdefault("beat_schedule", {})
        self.conf["beat_schedule"] = {**self.conf["beat_schedule"], key: entry}
        return key

    # the command line ------------------------------------------------------------------------
    def worker_main(self, argv: list[str] | None = None) -> None:
        from celeriac.cli import main

        main(["worker", *(argv or [])], obj=self)

    def start(self, argv: list[str] | None = None) -> None:
        from celeriac.cli import main

        main(argv or [], obj=self)


def _django_fixup() -> Any:
    """The Django fixup module when DJANGO_SETTINGS_MODULE is set (as Celery's fixups)."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    from celeriac.contrib.django import fixup

    return fixup


def _resolve_packages(packages: Any) -> list[str]:
    if callable(packages):
        packages = packages()
    if packages is None:
        try:
            from django.apps import apps

            return [config.name for config in apps.get_app_configs()]
        except Exception:
            return []
    return list(packages)


def _import_related(package: str, related_name: str) -> None:
    try:
        importlib.import_module(f"{package}.{related_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.{related_name}":
            raise


def shared_task(*args: Any, **kwargs: Any) -> Any:
    """A task registered in every app, current and future (``@shared_task``)."""

    def create(fun: Callable[..., Any]) -> Any:
        def make(app: Celery) -> Task:
            return app._task_from_fun(fun, **kwargs)

        _shared_tasks.append(make)
        for app in _state.all_apps():
            make(app)
        return _SharedTaskProxy(fun, kwargs)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return create(args[0])
    return create


class _SharedTaskProxy:
    """Stands for a shared task; resolves to the current app's task on each use."""

    def __init__(self, fun: Callable[..., Any], options: dict[str, Any]) -> None:
        self._fun = fun
        self._options = options
        self.__wrapped__ = fun
        self.__doc__ = fun.__doc__
        self.__name__ = fun.__name__

    def _task(self) -> Task:
        app = _state.get_current_app()
        name = self._options.get("name") or gen_task_name(
            app, self._fun.__name__, self._fun.__module__
        )
        if name not in app.tasks:
            app._task_from_fun(self._fun, **self._options)
        return app.tasks[name]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._task(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@shared_task: {self._fun.__module__}.{self._fun.__name__}>"


def default_hostname() -> str:
    return socket.gethostname()


def new_id() -> str:
    return str(uuid.uuid4())


__all__ = ["Celery", "PayloadTooLarge", "TaskRegistry", "gen_task_name", "shared_task"]
