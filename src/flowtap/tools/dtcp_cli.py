"""``flowtap-dtcp``: a mediation device's command line for DTCP over SSH (flowtap or Junos).

Examples::

    flowtap-dtcp -H router -u md1 add --cdest-id cd1 --dest-address 192.0.2.7 \\
        --cdest-address 198.51.100.9 --cdest-port 47000 --cdest-source-address 203.0.113.1 \\
        --cdest-source-port 47100 --static
    flowtap-dtcp -H router -u md1 list --flags Both
    flowtap-dtcp -H router -u md1 delete --criteria-id 3 --static
    flowtap-dtcp -H router -u md1 -i ~/.ssh/id_ed25519 send requests.txt
    flowtap-dtcp sign requests.txt          # print the signed requests, no connection

The password comes from ``--password-file``, ``--password-env`` (default
``FLOWTAP_DTCP_PASSWORD``) or a prompt, unless ``-i`` names a key. A file holds requests
separated by empty lines (LF or CRLF); any ``Authentication-Info`` in it is replaced, a
``Seq`` is kept, a missing one is numbered from ``--seq``. Replies are printed as received; a
reply whose HMAC does not verify is flagged on stderr. Exit status: 0 when every reply is 200,
1 when one is not, 2 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
from flowtap.tools.ssh_login import Refused, add_login_arguments, login

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
    add_login_arguments(p, port=DEFAULT_PORT, password_env="FLOWTAP_DTCP_PASSWORD",  # noqa: S106
                        user_help="SSH user (the control source)")
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


async def _exchange(args: argparse.Namespace, requests: list[bytes]) -> list[Reply]:
    client = await login(args, functools.partial(
        AsyncDtcpClient.connect, args.host, args.port, username=args.user,
        key=args.key.encode()))  # fmt: skip
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
