"""``flowtapd``: the flowtap appliance daemon (NETCONF, DTCP and the capture dataplane), on the
configuration kept in ``--state-dir``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import socket
import sys
from pathlib import Path

from flowtap import oplog
from flowtap.about import add_version, plain
from flowtap.app import serve
from flowtap.console import WARNINGS_LOGGER
from flowtap.errors import BootError

SYSLOG_ADDRESS = "/dev/log"


def _reach_syslog(address: str) -> None:
    """Raise OSError unless the syslog socket takes a connection (datagram or stream, as
    SysLogHandler tries). SysLogHandler itself ignores a failed connection and then prints a
    logging traceback for every record it cannot send."""
    error: OSError | None = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_UNIX, kind) as probe:
            try:
                probe.connect(address)
                return
            except OSError as exc:
                error = error or exc
    assert error is not None
    raise error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowtapd", description=plain(__doc__))
    add_version(parser)
    parser.add_argument("--state-dir", required=True, type=Path,
                        help="where running/startup/history, host key and logs live")
    parser.add_argument("--init-config", type=Path,
                        help="configuration for the first boot (default: factory default)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])  # fmt: skip
    parser.add_argument("--syslog", action="store_true",
                        help="also send the operator log (starts, stops, commits, logins) to the "
                             "local syslog, facility daemon")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if args.syslog:
        try:
            _reach_syslog(SYSLOG_ADDRESS)
            handler = logging.handlers.SysLogHandler(
                address=SYSLOG_ADDRESS, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        except OSError as exc:
            print(f"flowtapd: --syslog: cannot reach the syslog socket {SYSLOG_ADDRESS}: "
                  f"{exc.strerror or exc}", file=sys.stderr)  # fmt: skip
            return 2
        handler.setFormatter(logging.Formatter("flowtapd[%(process)d]: %(message)s"))
        oplog.LOG.addHandler(handler)
    level = logging.getLevelName(args.log_level)
    logging.getLogger("asyncssh").setLevel(max(logging.WARNING, level))
    if level <= logging.DEBUG:  # third-party warnings (see flowtap.console) are shown at DEBUG
        logging.getLogger(WARNINGS_LOGGER).setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args.state_dir, args.init_config))
    except BootError as exc:
        print(f"flowtapd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
