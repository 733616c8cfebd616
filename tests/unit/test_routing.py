"""task_routes in Celery's forms decide the queue; call options win."""

from __future__ import annotations

import re
from typing import Any

import pytest

from celeriac import Celery
from celeriac.routing import route


def test_dict_exact_name() -> None:
    routes = {"proj.tasks.add": {"queue": "math"}}
    assert route(routes, "proj.tasks.add", [], {}, {}) == {"queue": "math"}
    assert route(routes, "proj.tasks.other", [], {}, {}) == {}


def test_dict_glob_and_string_value() -> None:
    routes = {"proj.feed.*": "feeds", "*": {"queue": "default", "priority": 3}}
    assert route(routes, "proj.feed.import", [], {}, {}) == {"queue": "feeds"}
    assert route(routes, "other", [], {}, {}) == {"queue": "default", "priority": 3}


def test_exact_name_beats_an_earlier_glob() -> None:
    routes = {"proj.*": {"queue": "glob"}, "proj.add": {"queue": "exact"}}
    assert route(routes, "proj.add", [], {}, {}) == {"queue": "exact"}


def test_regex_keys_as_in_celery() -> None:
    routes = {re.compile(r"(image|video)\.tasks\..*"): {"queue": "media"}}
    assert route(routes, "video.tasks.encode", [], {}, {}) == {"queue": "media"}
    assert route(routes, "audio.tasks.encode", [], {}, {}) == {}


def test_list_of_routers_first_match_wins() -> None:
    def by_args(
        name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
    ) -> Any:
        return {"queue": "big"} if args and args[0] > 100 else None

    routes = [by_args, {"*": "small"}]
    assert route(routes, "t", [500], {}, {}) == {"queue": "big"}
    assert route(routes, "t", [5], {}, {}) == {"queue": "small"}


def test_old_style_callable_without_task_argument() -> None:
    def router(name: str, args: Any, kwargs: Any, options: Any) -> Any:
        return "legacy"

    assert route(router, "t", [], {}, {}) == {"queue": "legacy"}


def path_router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None) -> Any:
    return {"queue": f"by-path-{name}"}


class ClassRouter:
    def route_for_task(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return "by-class"


def test_router_given_as_dotted_path_or_object() -> None:
    assert route(f"{__name__}:path_router", "t", [], {}, {}) == {"queue": "by-path-t"}
    assert route([f"{__name__}.path_router"], "t", [], {}, {}) == {"queue": "by-path-t"}
    assert route([ClassRouter()], "t", [], {}, {}) == {"queue": "by-class"}


@pytest.fixture
def app() -> Celery:
    app = Celery("routing", task_routes={"routing.*": {"queue": "routed", "priority": 7}})

    @app.task(name="routing.plain")
    def plain() -> None:
        return None

    @app.task(name="routing.own_queue", queue="own")
    def own_queue() -> None:
        return None

    return app


def _message(app: Celery, name: str, **options: Any) -> Any:
    task = app.tasks[name]
    return app.build_message(
        name, (), {}, options={**task._default_options(), **options}, task_type=task
    )


def test_routes_apply_to_messages(app: Celery) -> None:
    message = _message(app, "routing.plain")
    assert (message.queue, message.priority) == ("routed", 7)


def test_call_options_and_task_queue_win_over_routes(app: Celery) -> None:
    assert _message(app, "routing.plain", queue="explicit").queue == "explicit"
    assert _message(app, "routing.own_queue").queue == "own"
    assert _message(app, "routing.plain", priority=0).priority == 0


def test_default_queue_when_nothing_routes() -> None:
    app = Celery("r2", task_default_queue="fallback")
    assert app.build_message("any.task", (), {}, options={}).queue == "fallback"


@pytest.mark.parametrize("priority", [-1, 256, "high", 1.5])
def test_bad_priority_is_refused(app: Celery, priority: Any) -> None:
    with pytest.raises(ValueError, match="priority must be an integer from 0 to 255"):
        _message(app, "routing.plain", priority=priority)
