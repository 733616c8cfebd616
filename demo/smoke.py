"""``make demo-smoke``: the whole story without a browser; exit status 0 only if it worked.

Starts everything, uploads the sample through the web server, waits for the four tools
and the combined result, runs the sequential comparison, checks the e-mail and a bad
upload's message, prints the result and the timings, and stops everything.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
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


def story(stack: Stack) -> None:
    browser = Browser(stack.base)
    browser.get("/")
    status, page, _ = browser.post(
        "/",
        {"column": "", "email": "smoke@localhost"},
        {"file": ("reviews.txt", SAMPLE.read_bytes())},
    )
    assert status == 200 and "/projects/" in page, (status, page)
    path = page.removeprefix(stack.base)
    print(f"uploaded the sample: {stack.base}{path}")
    last: dict[str, str] = {}

    def finished() -> Any:
        data = browser.json(path + "status.json")
        states = {t["key"]: f"{t['state']} {t.get('percent', 0)}%" for t in data["tools"]}
        if states != last:
            print("  tools:", ", ".join(f"{k} {v}" for k, v in states.items()), flush=True)
            last.update(states)
        return data if data["status"] in ("success", "failure") else None

    data = wait(finished, 600, "the analysis did not finish")
    if data["status"] != "success":
        raise SystemExit(f"FAILED: the project failed: {data['failure_reason']}")
    result = data["result"]
    print(
        f"combined: {result['lines']} lines; VADER {result['distribution']['vader']}; "
        f"model {result['distribution']['model']}; agreement {100 * result['agreement']:.0f}%"
    )
    print(f"  emotions: {result['emotions']}")
    print(f"  key phrases: {[p['phrase'] for p in result['phrases'][:8]]}")
    print(f"  most negative: {result['most_negative'][0]['text']!r}")
    browser.post(path + "sequential/", {}, {})
    seq = wait(
        lambda: (
            (browser.json(path + "status.json")["timing"]["sequential"] or {}).get("seconds")
            and browser.json(path + "status.json")["timing"]
        ),
        900,
        "the sequential run did not finish",
    )
    tools = {t["key"]: t["seconds"] for t in data["tools"]}
    wall, one_by_one = seq["parallel_wall"], seq["sequential"]["seconds"]
    print(
        f"timings on {seq['cores']} core(s): each tool {tools}; parallel wall {wall:.2f} s; "
        f"sequential {one_by_one:.2f} s (parallel = {100 * wall / one_by_one:.0f}% of sequential)"
    )
    mails = list((stack.var / "mail").glob("*.log"))
    assert mails and "smoke@localhost" in mails[-1].read_text(), "no notification e-mail"
    print(f"notification e-mail written: {mails[-1]}")
    status, _, body = browser.post(
        "/", {"column": "text"}, {"file": ("broken.csv", b"id,review\n1,hello\n")}
    )
    assert status == 400 and "has no column" in body, (status, body[:300])
    print("a CSV without the chosen column is refused with: \"broken.csv\" has no column 'text' …")


def main() -> int:
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
                story(stack)
    finally:
        drop_database(url)
    print("demo-smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
