"""How the command-line clients (``flowtap-dtcp``, ``flowtap-cli``) log in over SSH, and what
they tell the user when that fails.

The options are the same in every tool: ``-H/--host``, ``-p/--port``, ``-u/--user``,
``-i/--identity`` (keys), ``--password-env``, ``--password-file``, ``--known-hosts`` and
``--no-host-key-check``. A failure reaches the user as one line (:class:`Refused`), never as a
traceback. An untrusted host key comes with the fingerprint the server offered and the
known_hosts line that would trust it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

_T = TypeVar("_T")


class Refused(Exception):
    """Something to tell the user in one line instead of showing a traceback."""


def add_login_arguments(p: argparse.ArgumentParser, *, port: int, password_env: str,
                        user_help: str) -> None:  # fmt: skip
    p.add_argument("-H", "--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, default=port)
    p.add_argument("-u", "--user", help=user_help)
    p.add_argument("-i", "--identity", action="append", help="private key file (repeatable)")
    p.add_argument("--password-env", default=password_env,
                   help="environment variable holding the password (default %(default)s)")
    p.add_argument("--password-file", type=Path,
                   help="file whose first line is the password")
    p.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    p.add_argument("--no-host-key-check", action="store_true",
                   help="accept any host key (lab use only)")


def password(args: argparse.Namespace) -> str | None:
    """The password from ``--password-file``, ``--password-env`` or a prompt on the terminal;
    None when keys are given (``-i``)."""
    if args.identity:
        return None
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text().splitlines()
        except OSError as exc:
            raise Refused(f"cannot read the password file: {exc}") from None
        if not lines or not lines[0]:
            raise Refused(f"the password file {args.password_file} is empty")
        return str(lines[0])
    from_env: str | None = os.environ.get(args.password_env)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise Refused(f"no password: set {args.password_env}, give --password-file or a key "
                      "with -i (standard input is not a terminal to ask on)")  # fmt: skip
    return getpass.getpass(f"{args.user}@{args.host}'s password: ")


def known_hosts(args: argparse.Namespace) -> Any:
    """asyncssh's ``known_hosts``: None checks nothing, ``()`` the user's own file."""
    return None if args.no_host_key_check else (args.known_hosts or ())


async def host_key_help(args: argparse.Namespace) -> str:
    """What the server offered, and the known_hosts line that would trust it."""
    try:
        key = await asyncssh.get_server_host_key(args.host, args.port)
    except (OSError, asyncssh.Error):
        return "the host key is not trusted"
    if key is None:
        return "the host key is not trusted"
    where = args.host if args.port == 22 else f"[{args.host}]:{args.port}"
    line = key.export_public_key("openssh").decode().split()[:2]
    known = args.known_hosts or "~/.ssh/known_hosts"
    return (f"the host key of {where} is not trusted by {known}: the server offered "
            f"{key.get_algorithm()} {key.get_fingerprint()}. If that is the router's key, add "
            f"this line to {known}:\n{where} {' '.join(line)}")


async def login(args: argparse.Namespace, connect: Callable[..., Awaitable[_T]]) -> _T:
    """``connect(password=..., client_keys=..., known_hosts=...)`` with the user's credentials;
    a refused host key or login becomes :class:`Refused`."""
    secret = password(args)
    try:
        return await connect(password=secret, client_keys=args.identity,
                             known_hosts=known_hosts(args))  # fmt: skip
    except asyncssh.HostKeyNotVerifiable:
        raise Refused(await host_key_help(args)) from None
    except asyncssh.DisconnectError as exc:
        if str(exc.reason).startswith("Permission denied for user"):  # asyncssh's own words
            raise Refused(f"{args.user}: authentication failed (wrong password or key, or no "
                          "such user)") from None  # fmt: skip
        raise Refused(f"the router ended the connection: {exc.reason}") from None
