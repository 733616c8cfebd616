"""Publishing on Django's own connection, so a task exists only if its transaction commits.

Inside ``transaction.atomic()`` a task message is inserted through Django's psycopg 3
connection (``connection.connection``) in the open transaction: a rollback removes it,
a commit makes it visible to workers (and fires the NOTIFY that wakes them) at the same
instant as the rows it refers to. Outside an atomic block Django is in autocommit mode
and the message is committed at once, exactly like a plain ``delay()``.

This works only when celeriac's broker *is* Django's database (same host, port and
database name). Otherwise there is no shared transaction and publishing goes through
celeriac's own pool (Celery's behaviour; use ``transaction.on_commit`` there).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict

logger = logging.getLogger(__name__)

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def database_url(settings_dict: dict[str, Any]) -> str:
    """A ``postgresql://`` URL for a Django ``DATABASES`` entry (for ``CELERY_BROKER_URL``)."""
    from psycopg.conninfo import make_conninfo

    options = {
        key: value
        for key, value in {
            "dbname": settings_dict.get("NAME"),
            "user": settings_dict.get("USER"),
            "password": settings_dict.get("PASSWORD"),
            "host": settings_dict.get("HOST"),
            "port": str(settings_dict.get("PORT") or ""),
        }.items()
        if value
    }
    info = {k: str(v) for k, v in conninfo_to_dict(make_conninfo(**options)).items()}
    auth = quote(info.get("user", ""), safe="")
    if info.get("password"):
        auth += ":" + quote(info["password"], safe="")
    host, port = info.get("host", ""), info.get("port", "")
    query = {}
    if host.startswith("/"):  # a Unix socket directory goes in the query string
        query = {"host": host, **({"port": port} if port else {})}
        host = port = ""
    netloc = f"{auth}@" if auth else ""
    netloc += host + (f":{port}" if port else "")
    suffix = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{netloc}/{quote(info.get('dbname', ''), safe='')}{suffix}"


def _identity(host: Any, port: Any, dbname: Any) -> tuple[str, str, str]:
    host = str(host or "")
    return ("local" if host in _LOCAL_HOSTS else host, str(port or "5432"), str(dbname or ""))


def same_database(url: str, settings_dict: dict[str, Any]) -> bool:
    """True when ``url`` points at the database of a Django ``DATABASES`` entry."""
    info = conninfo_to_dict(url)
    return _identity(info.get("host"), info.get("port"), info.get("dbname")) == _identity(
        settings_dict.get("HOST"), settings_dict.get("PORT"), settings_dict.get("NAME")
    )


def publish_connection(app: Any, using: str = "default") -> Any:
    """Django's psycopg connection when inside ``atomic()`` on the broker database, else None.

    None means "publish through celeriac's own pool", which commits at once — the same
    outcome as Django's autocommit connection, without holding Django's connection.
    """
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return None
    url = app.conf.broker()
    if url is None or not same_database(url, connection.settings_dict):
        logger.debug("broker is not Django's database %r: no transactional publish", using)
        return None
    connection.ensure_connection()
    return connection.connection


__all__ = ["database_url", "publish_connection", "same_database"]
