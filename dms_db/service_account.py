"""The unprivileged account that runs PostgreSQL servers when dms-db runs as root.

PostgreSQL refuses to run as root.  dms-db therefore starts ``initdb``,
``pg_ctl`` and ``postgres`` as an ordinary account: the configured one, else
``postgres`` (Debian's server packages create it), else a system account
``dms-db`` that is created on first use.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

from dms_db.errors import SetupError

FALLBACK_ACCOUNT = "dms-db"


@dataclass(frozen=True)
class ServiceAccount:
    """A Unix account: the one that owns server data directories and runs the servers."""

    name: str
    uid: int
    gid: int

    @property
    def is_current_user(self) -> bool:
        """True when no switch of user is needed to run as this account."""
        return self.uid == os.geteuid()


def current_account() -> ServiceAccount:
    """The account this process runs as."""
    entry = pwd.getpwuid(os.geteuid())
    return ServiceAccount(entry.pw_name, entry.pw_uid, entry.pw_gid)


def resolve_service_account(preferred: str | None = None) -> ServiceAccount:
    """Return the account that must run the servers, creating one if needed.

    Parameters
    ----------
    preferred
        Account name from the configuration.  When dms-db is not root this is
        ignored: a normal user can only run servers as itself.
    """
    if os.geteuid() != 0:
        return current_account()
    names = [preferred] if preferred else ["postgres", FALLBACK_ACCOUNT]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise SetupError(
                f"account {name!r} is root; PostgreSQL refuses to run as root",
                hint="set local.service_user to an unprivileged account",
            )
        return ServiceAccount(entry.pw_name, entry.pw_uid, entry.pw_gid)
    if preferred:
        raise SetupError(
            f"the configured service account {preferred!r} does not exist",
            hint=f"create it with: useradd --system {preferred}",
        )
    return _create_fallback_account()


def _create_fallback_account() -> ServiceAccount:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if not os.path.exists(useradd):
        raise SetupError(
            "no unprivileged account to run PostgreSQL and no useradd to create one",
            hint="install the Debian package 'passwd' or create an account 'postgres'",
        )
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_ACCOUNT],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(FALLBACK_ACCOUNT)
    return ServiceAccount(entry.pw_name, entry.pw_uid, entry.pw_gid)
