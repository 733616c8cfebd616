"""Command-line parsing of the operations commands (no database)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from celeriac.cli import cli
from celeriac.cli.call import json_option, parse_when
from celeriac.cli.inspect import control_arguments, inspect_arguments
from celeriac.worker.autoscale import parse_autoscale
from celeriac.worker.control import to_signum


def test_inspect_arguments() -> None:
    assert inspect_arguments("ping", ()) == {}
    assert inspect_arguments("query_task", ("a", "b")) == {"ids": ["a", "b"]}
    assert inspect_arguments("registered", ("rate_limit",)) == {"taskinfoitems": ["rate_limit"]}
    with pytest.raises(click.UsageError, match="at least one task id"):
        inspect_arguments("query_task", ())
    with pytest.raises(click.UsageError, match="takes no arguments"):
        inspect_arguments("stats", ("x",))


def test_control_arguments() -> None:
    assert control_arguments("terminate", ("SIGKILL", "id1")) == {
        "task_ids": ["id1"],
        "terminate": True,
        "signal": "SIGKILL",
    }
    assert control_arguments("rate_limit", ("proj.add", "10/m")) == {
        "task_name": "proj.add",
        "rate_limit": "10/m",
    }
    assert control_arguments("time_limit", ("t", "1.5", "3")) == {
        "task_name": "t",
        "soft": 1.5,
        "hard": 3.0,
    }
    assert control_arguments("pool_grow", ()) == {"n": 1}
    assert control_arguments("pool_shrink", ("2",)) == {"n": 2}
    assert control_arguments("add_consumer", ("images",)) == {"queue": "images"}
    with pytest.raises(click.UsageError, match="usage: celeriac control rate_limit"):
        control_arguments("rate_limit", ("proj.add",))
    with pytest.raises(click.UsageError, match="SOFT must be a number"):
        control_arguments("time_limit", ("t", "soon"))


def test_json_options_are_checked() -> None:
    assert json_option('[1, "a"]', list, "-a") == [1, "a"]
    assert json_option(None, dict, "-k") == {}
    with pytest.raises(click.BadParameter, match="not valid JSON"):
        json_option("[1,", list, "-a")
    with pytest.raises(click.BadParameter, match="must be a JSON object"):
        json_option("[1]", dict, "-k")
    assert parse_when("2030-01-01T00:00:00", "--eta") is not None
    with pytest.raises(click.BadParameter, match="ISO-8601"):
        parse_when("tomorrow", "--eta")


def test_call_with_bad_json_exits_non_zero() -> None:
    result = CliRunner().invoke(cli, ["call", "proj.add", "-a", "[1,"])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


def test_unknown_action_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["inspect", "pong"])
    assert result.exit_code == 2
    assert "'ping'" in result.output


def test_autoscale_and_signal_parsing() -> None:
    assert parse_autoscale("3,10") == (10, 3)
    assert parse_autoscale("4") == (4, 0)
    with pytest.raises(Exception, match="MAX,MIN"):
        parse_autoscale("x,y")
    assert to_signum("SIGKILL") == 9
    assert to_signum("term") == 15
    assert to_signum(15) == 15
