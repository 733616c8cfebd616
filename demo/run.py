"""``make demo``: start the whole demo, print the URL, run until Ctrl-C, stop everything."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from stack import HERE, Stack, database_url


def main() -> int:
    url = database_url()
    var = Path(os.environ.get("DEMO_VAR", HERE / "var"))
    stop = threading.Event()
    # Ctrl-C (SIGINT) and SIGTERM both stop everything this started (set explicitly:
    # a shell may start us with SIGINT ignored)
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Stack(url, var, port=int(os.environ.get("DEMO_PORT", 8000))) as stack:
        print(
            f"\n  celeriac demo is running: {stack.base}/\n"
            f"  admin (task results): {stack.base}/admin/  "
            f"(create a login: cd demo && ../.venv/bin/python manage.py createsuperuser)\n"
            f"  e-mails are written to {var / 'mail'}\n"
            f"  {os.cpu_count()} core(s): one prefork worker process per core\n"
            f"  Ctrl-C stops everything.\n",
            flush=True,
        )
        stop.wait()
        print("\nstopping the web server, beat and workers …", flush=True)
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
