"""A throwaway PostgreSQL server on loopback for the shared-storage tests.

``postgres_url()`` (a context manager) runs ``initdb`` into a temporary
directory and starts ``postgres`` on a free port with ``pg_ctl``, yields an
SQLAlchemy URL, and stops and removes the server afterwards. PostgreSQL refuses
to run as root, so as root the server runs as the ``postgres`` system user
(created by the Debian package) through ``runuser``. Raises
:class:`PostgresUnavailable` (tests skip with its reason) when the binaries or
psycopg are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Iterator


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> str:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                                      "install the Debian package 'postgresql'")
    return os.path.dirname(shutil.which("initdb"))  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg (3) is not installed (pip install 'else-dse[postgres]')") from None
    bindir = _bindir()
    prefix: list[str] = []
    root = tempfile.mkdtemp(prefix="else-dse-pg-")
    os.chmod(root, 0o755)
    data, sock, log = os.path.join(root, "data"), os.path.join(root, "sock"), os.path.join(root, "log")
    os.makedirs(sock)
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pw = None
        if runuser is None or pw is None:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable("running as root without a 'postgres' user or runuser: "
                                      "PostgreSQL refuses to run as root")
        for p in (root, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *args: subprocess.run(prefix + list(args), check=True, capture_output=True,  # noqa: E731
                                       text=True, timeout=120)
    opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50 -c shared_buffers=16MB")
    try:
        run(f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l", log, "-w", "-t", "60", "start")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or str(exc)
        subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"could not start PostgreSQL: {detail.strip()[-500:]}") from None
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"   # the README's form: no driver named
        import sqlalchemy

        from else_dse.search import normalize_url
        engine = sqlalchemy.create_engine(normalize_url(url))
        for _ in range(50):
            try:
                with engine.connect():
                    break
            except sqlalchemy.exc.OperationalError:
                time.sleep(0.2)
        engine.dispose()
        yield url
    finally:
        subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
