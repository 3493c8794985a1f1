"""A real PostgreSQL server for the tests: `initdb` and `pg_ctl` on a temporary directory,
listening on 127.0.0.1 and a free port, stopped and removed at the end.

PostgreSQL refuses to run as root; as root (CI), the server runs as the `postgres` user of
the machine's PostgreSQL packages (`make test` installs them where missing).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def binaries() -> Path:
    """The folder of initdb, pg_ctl and postgres: on PATH, else Debian's newest."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major)
    if debian:
        return Path(debian[-1]).parent
    raise RuntimeError(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
        "apt-get install postgresql (make test does)"
    )


def _major(path: str) -> int:
    return int(Path(path).parts[4]) if Path(path).parts[4].isdigit() else 0


class PostgresServer:
    """`with PostgresServer() as pg: pg.new_database()` gives a SQLAlchemy URL of an empty
    database of its own."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="esteira-pg-"))
        self.port = _free_port()
        self.user = "esteira"

    def __enter__(self) -> PostgresServer:
        bin_dir = binaries()
        data = self.folder / "data"
        as_user = self._as_postgres_user()
        _run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", self.user,
              "-A", "trust", "-E", "UTF8", "--no-sync"])  # fmt: skip
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        _run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
              "-l", str(self.folder / "server.log"), "-w", "-t", "120", "start"])  # fmt: skip
        self._pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([*self._pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def base_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}"

    def new_database(self) -> str:
        """The URL of a new, empty database on this server."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as con:  # fmt: skip
            con.execute(f'CREATE DATABASE "{name}"')
        return f"{self.base_url}/{name}"

    def _as_postgres_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "PostgreSQL does not run as root and there is no 'postgres' user: "
                "apt-get install postgresql (make test does)"
            ) from None
        shutil.chown(self.folder, "postgres")
        return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
