"""How every `hardmine` command reports a mistake the user can fix: one line on stderr and exit code 2."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any

import typer

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError)
# The system's answers a user can act on (a full disk, no permission, a read-only or over-quota file system).
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.ENOTDIR,
                         errno.EISDIR})


def user_errors_exit_2(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into `error: <message>` on stderr and exit code 2, with no traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as err:
            typer.echo(f"error: {' '.join(str(err).split())}", err=True)
            raise typer.Exit(2) from None
        except OSError as err:
            if err.errno not in USER_ERRNOS:
                raise
            where = f" {err.filename!r}" if err.filename else ""
            typer.echo(f"error: cannot write or read{where}: {err.strerror or err}", err=True)
            raise typer.Exit(2) from None

    return run
