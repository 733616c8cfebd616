"""``make demo-smoke``: the whole story without a browser; exit status 0 only if it worked.

Starts everything, uploads the sample through the web server, waits for the four tools
and the combined result, runs the sequential comparison, checks the e-mail and a bad
upload's message, prints the result and the timings, and stops everything.
``--reps N`` (``make demo-smoke SMOKE_ARGS="--reps 5"``) then repeats parallel and
sequential back to back and prints each pair, the load average and the medians.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stack import HERE, Stack, database_url, drop_database

SAMPLE = HERE / "analysis/static/analysis/reviews.txt"


class Browser:
    """A cookie-keeping HTTP client that speaks Django's CSRF."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.status, response.geturl(), response.read().decode()

    def json(self, path: str) -> Any:
        return json.loads(self.get(path)[2])

    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def post(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]
    ) -> tuple[int, str, str]:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in {**fields, "csrfmiddlewaretoken": self.csrf()}.items():
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            parts.append(f"{head}{value}\r\n".encode())
        for name, (filename, data) in files.items():
            head = (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            parts.append(head.encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            self.base + path,
            data=body,
            method="POST",
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Referer": self.base + "/",
                "X-CSRFToken": self.csrf(),
            },
        )
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.geturl(), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.geturl(), exc.read().decode()


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"FAILED: {what} within {timeout:.0f} s")


def analyse(browser: Browser, stack: Stack, echo: bool) -> tuple[str, dict[str, Any]]:
    """Upload the sample, wait for the combined result; returns the page path and status."""
    status, page, _ = browser.post(
        "/",
        {"column": "", "email": "smoke@localhost"},
        {"file": ("reviews.txt", SAMPLE.read_bytes())},
    )
    assert status == 200 and "/projects/" in page, (status, page)
    path = page.removeprefix(stack.base)
    if echo:
        print(f"uploaded the sample: {stack.base}{path}")
    last: dict[str, str] = {}

    def finished() -> Any:
        data = browser.json(path + "status.json")
        states = {t["key"]: f"{t['state']} {t.get('percent', 0)}%" for t in data["tools"]}
        if echo and states != last:
            print("  tools:", ", ".join(f"{k} {v}" for k, v in states.items()), flush=True)
            last.update(states)
        return data if data["status"] in ("success", "failure") else None

    data = wait(finished, 600, "the analysis did not finish")
    if data["status"] != "success":
        raise SystemExit(f"FAILED: the project failed: {data['failure_reason']}")
    return path, data


def run_sequential(browser: Browser, path: str) -> dict[str, Any]:
    """Start the one-after-another run of the project's file; its timing when done."""
    browser.post(path + "sequential/", {}, {})

    def timing() -> Any:
        data = browser.json(path + "status.json")["timing"]
        return data if (data["sequential"] or {}).get("seconds") else None

    return dict(wait(timing, 900, "the sequential run did not finish"))


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%"


def print_timing(data: dict[str, Any], timing: dict[str, Any]) -> None:
    tools = {
        t["key"]: t["seconds"] if t.get("parts", 1) == 1 else f"{t['seconds']} ({t['parts']} parts)"
        for t in data["tools"]
    }
    wall, one_by_one = timing["parallel_wall"], timing["sequential"]["seconds"]
    cores = timing["cores"]
    print(f"timings on {cores} core(s): each tool's work (s) {tools}")
    print(
        f"  parallel wall {wall:.2f} s; sequential {one_by_one:.2f} s: parallel = "
        f"{percent(wall, one_by_one)} of sequential (CPU-bound work on {cores} core(s) "
        f"cannot go below {percent(1, cores)})"
    )
    computed = ", ".join(
        f"{n} core(s) {100 * v['fraction']:.0f}% ({v['seconds']:.2f} s)"
        for n, v in timing["projection"].items()
    )
    print(f"  computed from the run's task CPU times (free cores, no overhead): {computed}")


def story(stack: Stack, reps: int) -> None:
    browser = Browser(stack.base)
    browser.get("/")
    path, data = analyse(browser, stack, echo=True)
    result = data["result"]
    print(
        f"combined: {result['lines']} lines; VADER {result['distribution']['vader']}; "
        f"model {result['distribution']['model']}; agreement {100 * result['agreement']:.0f}%"
    )
    print(f"  emotions: {result['emotions']}")
    print(f"  key phrases: {[p['phrase'] for p in result['phrases'][:8]]}")
    print(f"  most negative: {result['most_negative'][0]['text']!r}")
    runs = [(run_sequential(browser, path), os.getloadavg()[0])]
    print_timing(data, runs[0][0])
    mails = list((stack.var / "mail").glob("*.log"))
    assert mails and "smoke@localhost" in mails[-1].read_text(), "no notification e-mail"
    print(f"notification e-mail written: {mails[-1]}")
    status, _, body = browser.post(
        "/", {"column": "text"}, {"file": ("broken.csv", b"id,review\n1,hello\n")}
    )
    assert status == 400 and "has no column" in body, (status, body[:300])
    print("a CSV without the chosen column is refused with: \"broken.csv\" has no column 'text' …")
    for _ in range(reps - 1):  # parallel, sequential, parallel, sequential … back to back
        path, _ = analyse(browser, stack, echo=False)
        runs.append((run_sequential(browser, path), os.getloadavg()[0]))
    if reps > 1:
        print_reps(runs)


def print_reps(runs: list[tuple[dict[str, Any], float]]) -> None:
    walls = [t["parallel_wall"] for t, _ in runs]
    seqs = [t["sequential"]["seconds"] for t, _ in runs]
    ratios = [w / s for w, s in zip(walls, seqs, strict=True)]
    print(f"{len(runs)} runs back to back (parallel, then sequential, same file):")
    for index, ((timing, load), ratio) in enumerate(zip(runs, ratios, strict=True), 1):
        print(
            f"  {index}: parallel {timing['parallel_wall']:.2f} s, sequential "
            f"{timing['sequential']['seconds']:.2f} s, {100 * ratio:.0f}%, load {load:.2f}"
        )
    median = statistics.median
    print(
        f"  median: parallel {median(walls):.2f} s, sequential {median(seqs):.2f} s, "
        f"parallel/sequential {100 * median(ratios):.0f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reps", type=int, default=1, help="analyse the sample this many times (timing medians)"
    )
    reps = parser.parse_args().reps
    # TERM/INT end the run through the with-blocks below: every process gets stopped
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit("demo-smoke: interrupted"))
    # a database of its own (dropped after): a running `make demo` is left alone
    url = make_conninfo(database_url(), dbname=f"celeriac_demo_smoke_{os.getpid()}")
    try:
        with tempfile.TemporaryDirectory(prefix="celeriac-smoke-") as var:
            verbose = bool(os.environ.get("SMOKE_VERBOSE"))
            with Stack(url, Path(var), port=0, echo=verbose) as stack:
                print(f"demo stack up at {stack.base} (database {conninfo_to_dict(url)['dbname']})")
                story(stack, reps)
    finally:
        drop_database(url)
    print("demo-smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
