"""celeriac schedule: stored periodic tasks changed from the command line."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from celeriac.cli import cli


def test_schedule_commands(app: Any) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), obj=app)

    assert run("schedule", "add", "nightly", "proj.add", "--cron", "0 3 * * mon-fri",
               "-a", "[1, 2]").exit_code == 0  # fmt: skip
    assert run("schedule", "add", "often", "proj.add", "--every", "30").exit_code == 0
    listed = json.loads(run("schedule", "list", "-j").output)
    assert [e["name"] for e in listed] == ["nightly", "often"]
    assert listed[0]["schedule"]["day_of_week"] == "mon-fri" and listed[0]["args"] == [1, 2]
    assert run("schedule", "disable", "often").output.strip() == "disabled often"
    assert json.loads(run("schedule", "list", "-j").output)[1]["enabled"] is False
    assert run("schedule", "remove", "nightly").exit_code == 0
    missing = run("schedule", "remove", "nightly")
    assert missing.exit_code == 1 and "no periodic task named 'nightly'" in missing.output
    bad = run("schedule", "add", "x", "proj.add", "--cron", "61 * * * *")
    assert bad.exit_code == 2 and "outside 0-59" in bad.output
    both = run("schedule", "add", "x", "proj.add", "--cron", "* * * * *", "--every", "1")
    assert both.exit_code == 2 and "exactly one of" in both.output
