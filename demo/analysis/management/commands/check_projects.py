"""``manage.py check_projects [--every SECONDS]``: the checker, once or in a loop.

Dispatches projects left unassigned and failed projects with attempts left (at most
ANALYSIS_MAX_ATTEMPTS tries each, ANALYSIS_RETRY_AFTER seconds apart). ``make demo``
runs it in a loop next to the workers; with celeriac beat, schedule the
``analysis.check_projects`` task instead (CELERY_BEAT_SCHEDULE in the settings).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from analysis.dispatch import redispatch_due


class Command(BaseCommand):
    help = "Dispatch projects left unassigned or failed with attempts left."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--every", type=float, default=0, help="repeat every N seconds")

    def handle(self, *args: Any, every: float = 0, **options: Any) -> None:
        while True:
            done = redispatch_due()
            if done or not every:
                self.stdout.write(f"dispatched {len(done)} project(s): {done}", ending="\n")
            self.stdout.flush()
            if not every:
                return
            time.sleep(every)
