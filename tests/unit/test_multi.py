"""Celery's multi node syntax and multi's own options (no processes started)."""

from __future__ import annotations

import click
import pytest

from celeriac.cli.base import Context
from celeriac.cli.multi import own_options, worker_command
from celeriac.exceptions import ImproperlyConfigured
from celeriac.multi import expand_file, expand_nodes, signum_of, split_argv


def names(argv: list[str], **kw: str) -> list[str]:
    return [node.name for node in expand_nodes(argv, host="box.example.com", **kw)]


def test_node_names() -> None:
    assert names(["3"]) == [f"celery{i}@box.example.com" for i in (1, 2, 3)]
    assert names(["2"], range_prefix="worker") == [
        "worker1@box.example.com",
        "worker2@box.example.com",
    ]
    assert names(["w1", "w2"]) == ["w1@box.example.com", "w2@box.example.com"]
    assert names(["w1@%h", "x@other"]) == ["w1@box.example.com", "x@other"]
    with pytest.raises(ImproperlyConfigured, match="no nodes"):
        expand_nodes(["-c", "2"])
    with pytest.raises(ImproperlyConfigured, match="repeat"):
        expand_nodes(["w1", "w1"])


def test_per_node_options() -> None:
    nodes = expand_nodes(
        ["3", "-c", "2", "-c:1", "10", "-Q:2-3", "images", "--loglevel:celery3=debug", "-B:1"],
        host="h",
    )
    assert nodes[0].options == ["-c", "10", "-B"]
    assert nodes[1].options == ["-c", "2", "-Q", "images"]
    assert nodes[2].options == ["-c", "2", "-Q", "images", "--loglevel", "debug"]
    by_name = expand_nodes(["w1", "w2", "-Q:w1,w2", "a", "-Q:w2", "b"], host="h")
    assert by_name[0].options == ["-Q", "a"] and by_name[1].options == ["-Q", "b"]


def test_split_argv_and_own_options() -> None:
    assert split_argv(["a", "b", "-c", "3", "--x=1", "-B"]) == (
        ["a", "b"],
        [("-c", "3"), ("--x", "1"), ("-B", None)],
    )
    found, rest = own_options(["3", "--pidfile=/p/%n.pid", "-KILL", "--logfile", "l", "-c", "1"])
    assert found == {"pidfile": "/p/%n.pid", "signal": "-KILL", "logfile": "l"}
    assert rest == ["3", "-c", "1"]
    with pytest.raises(click.UsageError):
        own_options(["3", "--pidfile"])
    assert signum_of("-KILL") == 9 and signum_of("-9") == 9 and signum_of("TERM") == 15


def test_file_templates_and_command() -> None:
    assert expand_file("/run/%n.pid", "w1@box") == "/run/w1.pid"
    assert expand_file("/log/%n%I.log", "w1@box") == "/log/w1.log"
    assert expand_file("/log/%h.log", "w1@box") == "/log/w1@box.log"
    node = expand_nodes(["w1", "-c", "2"], host="box")[0]
    ctx = Context("proj", "postgresql://db", None)
    assert worker_command(ctx, node, "/p/%n.pid", "/l/%n.log", "py") == [
        "py", "-m", "celeriac", "-A", "proj", "-b", "postgresql://db", "worker", "--detach",
        "-n", "w1@box", "--pidfile", "/p/%n.pid", "--logfile", "/l/%n.log", "-c", "2",
    ]  # fmt: skip
