"""``flowtap-dtcp``: a mediation device's command line for DTCP over SSH (flowtap or Junos).

Examples::

    flowtap-dtcp -H router -u md1 add --cdest-id cd1 --dest-address 192.0.2.7 \\
        --cdest-address 198.51.100.9 --cdest-port 47000 --cdest-source-address 203.0.113.1 \\
        --cdest-source-port 47100 --static
    flowtap-dtcp -H router -u md1 list --flags Both
    flowtap-dtcp -H router -u md1 delete --criteria-id 3 --static
    flowtap-dtcp -H router -u md1 -i ~/.ssh/id_ed25519 send requests.txt
    flowtap-dtcp sign requests.txt          # print the signed requests, no connection

The password comes from ``--password-env`` (default ``FLOWTAP_DTCP_PASSWORD``) or a prompt,
unless ``-i`` names a key. A file holds requests separated by empty lines (LF or CRLF); any
``Authentication-Info`` in it is replaced, a ``Seq`` is kept, a missing one is numbered from
``--seq``. Replies are printed as received; a reply whose HMAC does not verify is flagged on
stderr. Exit status: 0 when every reply is 200, 1 when one is not, 2 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncssh

from flowtap.about import add_version, plain
from flowtap.tools.dtcp_client import (
    DEFAULT_PORT,
    DEFAULT_VERSION,
    AsyncDtcpClient,
    Reply,
    build_request,
    parse_message_file,
)

TIMEOUTS = (("--timeout-idle", "Timeout-Idle"), ("--timeout-total", "Timeout-Total"),
            ("--timeout-packets", "Timeout-Packets"), ("--timeout-bytes", "Timeout-Bytes"))
ADD_FIELDS = (
    ("--cdest-id", "Cdest-ID"), ("--source-address", "Source-Address"),
    ("--dest-address", "Dest-Address"), ("--protocol", "Protocol"),
    ("--source-port", "Source-Port"), ("--dest-port", "Dest-Port"),
    ("--icmp-type", "ICMP-Type"), ("--icmp-code", "ICMP-Code"),
    ("--cdest-address", "X-JTap-Cdest-Dest-Address"), ("--cdest-port", "X-JTap-Cdest-Dest-Port"),
    ("--cdest-source-address", "X-JTap-Cdest-Source-Address"),
    ("--cdest-source-port", "X-JTap-Cdest-Source-Port"), ("--ttl", "X-JTap-Cdest-TTL"),
    ("--input-interface", "X-JTap-Input-Interface"), ("--ip-version", "X-JTap-IP-Version"),
    ("--intercept-id", "X-MD-Intercept-Id"), ("--priority", "Priority"), *TIMEOUTS,
)  # fmt: skip
SELECT_FIELDS = (("--criteria-id", "Criteria-ID"), ("--cdest-id", "Cdest-ID"))
COMMANDS = {
    "add": ("ADD", ADD_FIELDS, True),
    "delete": ("DELETE", SELECT_FIELDS, True),
    "refresh": ("REFRESH", (*SELECT_FIELDS, *TIMEOUTS), False),
    "list": ("LIST", (*SELECT_FIELDS, ("--flags", "Flags")), False),
    "noop": ("NOOP", (), False),
}


def _field(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon:
        name, colon, value = text.partition("=")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError("a field is 'Name: value' or Name=value")
    return name.strip(), value.strip()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowtap-dtcp", description=plain(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version(p)
    p.add_argument("-H", "--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, default=DEFAULT_PORT)
    p.add_argument("-u", "--user", help="SSH user (the control source)")
    p.add_argument("-i", "--identity", action="append", help="private key file (repeatable)")
    p.add_argument("--password-env", default="FLOWTAP_DTCP_PASSWORD",
                   help="environment variable holding the password (default %(default)s)")
    p.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    p.add_argument("--no-host-key-check", action="store_true",
                   help="accept any host key (lab use only)")
    p.add_argument("--csource-id", help="Csource-ID (default: the SSH user)")
    p.add_argument("--dtcp-version", default=DEFAULT_VERSION)
    p.add_argument("--seq", type=int, default=1, help="first Seq (default %(default)s)")
    p.add_argument("--key", default="Juniper", help="HMAC key (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per reply")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (_method, options, has_static) in COMMANDS.items():
        cmd = sub.add_parser(name, help=f"send one {name.upper()}")
        for option, header in options:
            cmd.add_argument(option, dest=header, metavar=header.upper())
        if has_static:
            cmd.add_argument("--static", action="store_true", help="Flags: STATIC")
        cmd.add_argument("-f", "--field", action="append", type=_field, default=[],
                         help="any other field, 'Name: value' (repeatable)")
    for name in ("send", "sign"):
        cmd = sub.add_parser(name, help=f"{name} the requests of a file ('-': stdin)")
        cmd.add_argument("file")
    return p


def _fields(args: argparse.Namespace, options: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    fields = [(header, getattr(args, header)) for _, header in options
              if getattr(args, header, None) is not None]  # fmt: skip
    fields += args.field
    if getattr(args, "static", False):
        fields.append(("Flags", "STATIC"))
    return fields


def _requests(args: argparse.Namespace) -> list[bytes]:
    key = args.key.encode()
    if args.command in COMMANDS:
        method, options, _ = COMMANDS[args.command]
        return [build_request(method, _fields(args, options), seq=args.seq,
                              csource_id=args.csource_id or args.user,
                              version=args.dtcp_version, key=key)]  # fmt: skip
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    out, seq = [], args.seq
    for message in parse_message_file(text):
        fields = list(message.fields)
        has_csource = any(n.lower() == "csource-id" for n, _ in fields)
        csource = None if has_csource else (args.csource_id or args.user)
        out.append(build_request(message.method, fields, seq=message.seq or seq,
                                 csource_id=csource, version=message.version, key=key))
        seq = (message.seq or seq) + 1
    return out


class Refused(Exception):
    """What the user must be told, in one line, instead of a traceback's last words."""


def _password(args: argparse.Namespace) -> str | None:
    if args.identity:
        return None
    password = os.environ.get(args.password_env)
    if password:
        return password
    if not sys.stdin.isatty():
        raise Refused(f"no password: set {args.password_env} or give a key with -i "
                      "(standard input is not a terminal to ask on)")  # fmt: skip
    return getpass.getpass(f"{args.user}@{args.host}'s password: ")


async def _host_key_help(args: argparse.Namespace) -> str:
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


async def _exchange(args: argparse.Namespace, requests: list[bytes]) -> list[Reply]:
    password = _password(args)
    known_hosts = None if args.no_host_key_check else (args.known_hosts or ())
    try:
        client = await AsyncDtcpClient.connect(
            args.host, args.port, username=args.user, password=password,
            client_keys=args.identity, known_hosts=known_hosts, key=args.key.encode(),
        )  # fmt: skip
    except asyncssh.HostKeyNotVerifiable:
        raise Refused(await _host_key_help(args)) from None
    except asyncssh.DisconnectError as exc:
        if str(exc.reason).startswith("Permission denied for user"):  # asyncssh's own words
            raise Refused(f"{args.user}: authentication failed (wrong password or key, or no "
                          "such user)") from None  # fmt: skip
        raise Refused(f"the router ended the connection: {exc.reason}") from None
    replies: list[Reply] = []
    try:
        for data in requests:  # one at a time, as Juniper's clients do
            replies += await client.send(data, 1, timeout=args.timeout)
    finally:
        await client.close()
    if len(replies) < len(requests):
        why = client.disconnect_reason
        for reply in replies:
            _show(reply)
        raise Refused(f"the router ended the connection: {why}" if why else
                      "the channel closed before every request was answered"
                      f"{_csource_hint(args)}")  # fmt: skip
    return replies


def _csource_hint(args: argparse.Namespace) -> str:
    if args.csource_id and args.csource_id != args.user:
        return (f" (Csource-ID {args.csource_id!r} is not the SSH user {args.user!r}: the "
                "router drops such requests unanswered and closes the channel)")
    return ""


def _show(reply: Reply) -> None:
    sys.stdout.write(reply.raw.decode("utf-8", errors="replace"))
    if not reply.verified:
        print(f"flowtap-dtcp: reply SEQ {reply.seq}: AUTHENTICATION-INFO does not verify",
              file=sys.stderr)  # fmt: skip
    if reply.status != 200:
        print(f"flowtap-dtcp: reply SEQ {reply.seq}: {reply.status} {reply.reason}"
              f"{_named_fields(reply)}", file=sys.stderr)  # fmt: skip


def _named_fields(reply: Reply) -> str:
    """The request fields an error reply echoes (Error-Parameters), in words."""
    echoed = [(name, value) for name, value in reply.headers
              if name.upper() not in _REPLY_OWN]  # fmt: skip
    if not echoed:
        return ""
    return ": " + "; ".join(f"{name} {value!r}" if value else f"{name} missing"
                            for name, value in echoed)  # fmt: skip


_REPLY_OWN = frozenset({"SEQ", "TIMESTAMP", "AUTHENTICATION-INFO"})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        requests = _requests(args)
    except (OSError, ValueError) as exc:
        print(f"flowtap-dtcp: {exc}", file=sys.stderr)
        return 2
    if args.command == "sign":
        sys.stdout.write(b"".join(requests).decode("utf-8"))
        return 0
    if not args.user:
        print("flowtap-dtcp: -u/--user is required", file=sys.stderr)
        return 2
    try:
        replies = asyncio.run(_exchange(args, requests))
    except Refused as refusal:
        sys.stdout.flush()
        print(f"flowtap-dtcp: {refusal}", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"flowtap-dtcp: no reply within {args.timeout:g} s", file=sys.stderr)
        return 2
    except (OSError, asyncssh.Error) as exc:  # connection refused, unreachable, SSH failures
        print(f"flowtap-dtcp: {args.host} port {args.port}: {exc}", file=sys.stderr)
        return 2
    for reply in replies:
        _show(reply)
    sys.stdout.flush()
    return 0 if all(r.status == 200 for r in replies) else 1


if __name__ == "__main__":
    sys.exit(main())
