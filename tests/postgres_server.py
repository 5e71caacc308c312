"""A throwaway PostgreSQL server for the tests that need a real one (Optuna's RDB storage with
several worker processes): the distribution's PostgreSQL (Debian package ``postgresql``), a fresh
cluster in a temporary directory, listening only on 127.0.0.1 on a free port, with a random
password; stopped and deleted at the end of the session.

Binaries: ``initdb`` / ``pg_ctl`` on PATH or in ``/usr/lib/postgresql/<version>/bin`` (where Debian
puts them). Where they are missing and we are root with apt-get, the package is installed (as
scripts/test.sh does); otherwise the tests that need the server are skipped, saying why. PostgreSQL
refuses to run as root, so as root the cluster belongs to the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DATABASE = "ofa_nni_test"
USER = "ofa_nni"


def _binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _install_with_apt() -> str | None:
    """Install the ``postgresql`` package where we may; None, or why not."""
    if os.geteuid() != 0:
        return "not root, so the package cannot be installed here (apt-get install postgresql)"
    if shutil.which("apt-get") is None:
        return "no apt-get to install the 'postgresql' package with"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"'{' '.join(command)}' failed: {done.stderr.strip()[-300:]}"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster; yields the SQLAlchemy URL of an empty database on it. Skips the calling
    test (``pytest.skip``) where no server can be had."""
    binaries = _binaries()
    if binaries is None:
        why = _install_with_apt()
        binaries = _binaries()
        if binaries is None:
            pytest.skip(f"PostgreSQL is not installed and {why or 'initdb was not found after installing it'}")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to own the test cluster")
        run_as = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="ofa-nni-postgres-"))  # /tmp: reachable by the postgres user
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"
    password = secrets.token_hex(16)
    password_file = root / "password"
    password_file.write_text(password + "\n")
    if run_as:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    port = _free_port()

    def run(*command: str, timeout: float = 120) -> None:
        done = subprocess.run([*run_as, *command], capture_output=True, text=True, timeout=timeout, cwd=root)
        if done.returncode != 0:
            server_log = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}\n{server_log}")

    run(str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={password_file}",
        "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions")
    # Only loopback TCP, and the Unix socket in the cluster's own directory (not /var/run). A throwaway
    # cluster need not survive a power cut: no fsync (transactions and locks are unchanged).
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=port, user=USER, password=password,
                                              dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        connection.close()
        yield f"postgresql+psycopg2://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
    finally:
        subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120, cwd=root)
        shutil.rmtree(root, ignore_errors=True)
