"""Start a throwaway PostgreSQL server for tests and benchmarks.

``initdb`` into a temporary directory, ``pg_ctl start`` on a free loopback port, and a clean
stop (with the directory removed) when the context exits, also after an error.  PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Optional[str]:
    """The folder holding initdb and pg_ctl: PATH, then pg_config, then Debian's layout."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return str(Path(initdb).resolve().parent)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        cand = out.stdout.strip()
        if out.returncode == 0 and Path(cand, "initdb").exists():
            return cand
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> Optional[str]:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PgUnavailable("running as root and no unprivileged user (postgres or nobody) to run PostgreSQL as")


@dataclass(frozen=True)
class PgServer:
    port: int

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database in autocommit (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(sql)  # type: ignore[arg-type]


@contextmanager
def throwaway_server(extra_settings: tuple[str, ...] = ()) -> Iterator[PgServer]:
    """A fresh PostgreSQL cluster for the duration of the ``with`` block."""
    bindir = find_bindir()
    if bindir is None:
        raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="catalog-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(sock, user)
    base.chmod(0o700)

    def as_user(cmd: list[str]) -> list[str]:
        return ["runuser", "-u", user, "--", *cmd] if user else cmd

    port = _free_port()
    settings = ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off",
                "full_page_writes=off", *extra_settings]  # fmt: skip
    opts = f"-p {port} -k {sock} " + " ".join(f"-c {s}" for s in settings)
    started = False
    try:
        subprocess.run(as_user([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust",
                                "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)  # fmt: skip
        subprocess.run(as_user([f"{bindir}/pg_ctl", "-D", str(data), "-l", str(log), "-o", opts,
                                "-w", "-t", "60", "start"]), check=True, capture_output=True)  # fmt: skip
        started = True
        yield PgServer(port=port)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace") + (log.read_text() if log.exists() else "")
        raise PgUnavailable(f"could not start PostgreSQL: {detail.strip()[-2000:]}") from None
    finally:
        if started:
            subprocess.run(as_user([f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
