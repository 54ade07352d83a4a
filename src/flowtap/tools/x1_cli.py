"""``flowtap-x1``: an ADMF's command line for ETSI X1 (TS 103 221-1) over HTTPS with a client
certificate.

Examples::

    flowtap-x1 --url https://ne:8443/X1/NE --cert admf.crt --key admf.key --ca ca.pem \\
        --admf admf-1 --ne ne-1 create-destination --did DID --address 192.0.2.50 --port 6443
    flowtap-x1 ... activate --xid XID --target ipv4Address=198.51.100.7 \\
        --target tcpPort=443 --did DID
    flowtap-x1 ... get-task --xid XID
    flowtap-x1 ... deactivate --xid XID
    flowtap-x1 ... ping
    flowtap-x1 ... --xml send request.xml     # an X1Request document, sent as is

Targets are KIND=VALUE: ipv4Address, ipv6Address, ipv4Cidr, ipv6Cidr, tcpPort, udpPort,
tcpPortRange and udpPortRange (START-END). An --xid or --did of "new" is a fresh UUID (printed).
The connection settings may also come from the environment: FLOWTAP_X1_URL, FLOWTAP_X1_CERT,
FLOWTAP_X1_KEY, FLOWTAP_X1_CA, FLOWTAP_X1_ADMF, FLOWTAP_X1_NE. Answers are printed one leaf a
line (--xml: the response document). Exit status: 0 when every answer is a success, 1 when one
is an error, 2 when the network element cannot be reached or answers with something else.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from flowtap.about import add_version, plain
from flowtap.tools.x1_client import DEFAULT_URL, X1Client, X1ClientError, parse_target
from flowtap.x1 import model
from flowtap.x1.encode import encode_request
from flowtap.x1.targets import Target

SETTINGS = (("--url", "FLOWTAP_X1_URL"), ("--cert", "FLOWTAP_X1_CERT"),
            ("--key", "FLOWTAP_X1_KEY"), ("--ca", "FLOWTAP_X1_CA"),
            ("--admf", "FLOWTAP_X1_ADMF"), ("--ne", "FLOWTAP_X1_NE"))  # fmt: skip
DELIVERY_TYPES = [t.value for t in model.DeliveryType]


def _identifier(text: str) -> uuid.UUID:
    if text == "new":
        return uuid.uuid4()
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a UUID (or 'new')") from None


def _target(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowtap-x1", description=plain(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version(p)
    for option, variable in SETTINGS:
        default = os.environ.get(variable, DEFAULT_URL if option == "--url" else None)
        p.add_argument(option, default=default, help=f"(env {variable})")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--xml", action="store_true", help="print the response document as is")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text)

    for name, text in (("activate", "ActivateTask"), ("modify", "ModifyTask")):
        c = command(name, text)
        c.add_argument("--xid", type=_identifier, required=True)
        c.add_argument("--target", type=_target, action="append", required=True)
        c.add_argument("--did", type=_identifier, action="append", default=[])
        c.add_argument("--delivery-type", choices=DELIVERY_TYPES, default="X3Only")
        c.add_argument("--correlation-id", type=int)
    for name, text in (("deactivate", "DeactivateTask"), ("get-task", "GetTaskDetails")):
        command(name, text).add_argument("--xid", type=_identifier, required=True)
    for name, text in (("create-destination", "CreateDestination"),
                       ("modify-destination", "ModifyDestination")):  # fmt: skip
        c = command(name, text)
        c.add_argument("--did", type=_identifier, required=True)
        c.add_argument("--address", required=True)
        c.add_argument("--port", type=int, required=True)
        c.add_argument("--delivery-type", choices=DELIVERY_TYPES, default="X3Only")
        c.add_argument("--friendly-name")
        c.add_argument("--udp", action="store_true", help="a UDPPort (refused by flowtap: 6020)")
    for name, text in (("remove-destination", "RemoveDestination"),
                       ("get-destination", "GetDestinationDetails")):  # fmt: skip
        command(name, text).add_argument("--did", type=_identifier, required=True)
    for name, text in (("deactivate-all", "DeactivateAllTasks"),
                       ("remove-all-destinations", "RemoveAllDestinations"),
                       ("list", "ListAllDetails"), ("get-all", "GetAllDetails"),
                       ("ne-status", "GetNEStatus"), ("keepalive", "Keepalive"),
                       ("ping", "Ping")):  # fmt: skip
        command(name, text)
    command("send", "send an X1Request document from a file as is").add_argument(
        "file", type=Path)
    return p


def build(client: X1Client, args: argparse.Namespace) -> model.Request:
    """The message a command (other than ``send``) stands for."""
    simple: dict[str, Callable[[], model.Request]] = {
        "deactivate-all": client.deactivate_all, "remove-all-destinations":
        client.remove_all_destinations, "list": client.list_all, "get-all": client.get_all,
        "ne-status": client.ne_status, "keepalive": client.keepalive, "ping": client.ping,
    }  # fmt: skip
    if args.command in simple:
        return simple[args.command]()
    if args.command in ("activate", "modify"):
        make = client.activate if args.command == "activate" else client.modify
        return make(args.xid, args.target, args.did,
                    delivery_type=model.DeliveryType(args.delivery_type),
                    correlation_id=args.correlation_id)  # fmt: skip
    if args.command == "deactivate":
        return client.deactivate(args.xid)
    if args.command == "get-task":
        return client.get_task(args.xid)
    if args.command in ("create-destination", "modify-destination"):
        make_destination = (client.create_destination if args.command == "create-destination"
                            else client.modify_destination)  # fmt: skip
        return make_destination(args.did, args.address, args.port,
                                delivery_type=model.DeliveryType(args.delivery_type),
                                friendly_name=args.friendly_name, udp=args.udp)  # fmt: skip
    if args.command == "remove-destination":
        return client.remove_destination(args.did)
    return client.get_destination(args.did)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    missing = [option for option, _ in SETTINGS if getattr(args, option[2:]) is None]
    if missing:
        print(f"flowtap-x1: missing {', '.join(missing)} (or their environment variables)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        client = X1Client(args.url, cert=args.cert, key=args.key, ca=args.ca, admf=args.admf,
                          ne=args.ne, timeout=args.timeout)  # fmt: skip
    except (OSError, ssl.SSLError, ValueError) as exc:
        print(f"flowtap-x1: {exc}", file=sys.stderr)
        return 2
    with client:
        if args.command == "send":
            body = args.file.read_bytes()
        else:
            message = build(client, args)
            for name in ("xid", "did"):
                if isinstance(getattr(args, name, None), uuid.UUID):
                    print(f"{name}: {getattr(args, name)}", file=sys.stderr)
            body = encode_request([message])
        try:
            raw, answers = client.send_raw(body)
        except (OSError, ssl.SSLError, X1ClientError) as exc:
            print(f"flowtap-x1: {exc}", file=sys.stderr)
            return 2
    if args.xml:
        sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
    else:
        print("\n".join(answer.render() for answer in answers))
    return 0 if all(answer.ok for answer in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
