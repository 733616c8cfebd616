"""An embedded PostgreSQL for newcomers: used when no broker URL is configured."""

from __future__ import annotations

from celeriac.exceptions import ImproperlyConfigured


def embedded_url() -> str:
    """The URL of the embedded server, starting it if needed."""
    raise ImproperlyConfigured(
        "no PostgreSQL configured: set broker_url, Celery(broker='postgresql://...') "
        "or CELERIAC_BROKER_URL"
    )
