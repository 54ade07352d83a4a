"""An in-process NETCONF server for the fuzz targets: real schema, transaction manager, datastores
and ``Session``, no SSH. The session's bytes go to a list instead of a channel.

The configuration is the factory default plus the three ``netconf/examples`` edits, committed at
start, so filters and get-config have interfaces, LI users, RADIUS and flow-tap data to walk.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
from pathlib import Path

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.datastores import Datastores
from flowtap.config.permissions import expand
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager
from flowtap.netconf.context import ServerContext
from flowtap.netconf.session import Session

REPO = Path(__file__).resolve().parents[2]
FACTORY_DEFAULT = REPO / "netconf" / "factory-default.xml"
EXAMPLES = sorted((REPO / "netconf" / "examples").glob("*.xml"))
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
ADMIN = Principal("fuzz", "fuzz", "super-user", expand({"all", "flow-tap-control"}), "password")
SESSION_LOGGER = "flowtap.netconf.session"


class UnexpectedFailure(logging.Handler):
    """Collects the exceptions ``Session.handle`` turns into 'Internal error' replies: each is a
    crash (the session survives it by design, so only its log record shows it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.failures.append(record.exc_info[1])


def _top_level(path: Path) -> bytes:
    """A <config> file's top-level elements, as the appliance boots them (see app.py)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True,
                             remove_comments=True)  # fmt: skip
    return b"".join(etree.tostring(child) for child in etree.parse(str(path), parser).getroot())


def _rpc(body: str, message_id: int) -> bytes:
    return f'<rpc xmlns="{NC_NS}" message-id="{message_id}">{body}</rpc>'.encode()


class Server:
    """One datastore, one admin session; ``handle`` runs one message through the session."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema or Schema()
        self.loop = asyncio.new_event_loop()
        shm = Path("/dev/shm")
        self.state_dir = Path(tempfile.mkdtemp(prefix="flowtap-fuzz-",
                                               dir=shm if shm.is_dir() else None))  # fmt: skip
        atexit.register(shutil.rmtree, self.state_dir, ignore_errors=True)
        self.state = StateDir(self.state_dir)
        self.txn = TransactionManager(self.schema, self.state)
        self.loop.run_until_complete(self.txn.boot(_top_level(FACTORY_DEFAULT), persist=True))
        self.datastores = Datastores(self.txn)
        self.ctx = ServerContext(self.schema, self.txn, self.datastores)
        self.sent: list[bytes] = []
        self.session = Session(self.ctx, ADMIN, "127.0.0.1", self.sent.append, lambda: None)
        self.ctx.sessions[self.session.session_id] = self.session
        self.failures = UnexpectedFailure()
        logger = logging.getLogger(SESSION_LOGGER)
        logger.addHandler(self.failures)
        logger.propagate = False  # the fuzzer reports failures itself; keep its output readable
        for index, example in enumerate(EXAMPLES, 1):
            config = etree.tostring(etree.parse(str(example)).getroot()).decode()
            self._setup(_rpc(f"<edit-config><target><candidate/></target>{config}</edit-config>",
                             index))  # fmt: skip
        self._setup(_rpc("<commit/>", 100))

    def _setup(self, message: bytes) -> None:
        self.handle(message)
        if b"<ok/>" not in self.sent[-1]:
            raise RuntimeError(f"fuzz server setup failed: {self.sent[-1][:500]!r}")

    def handle(self, message: bytes) -> list[bytes]:
        """The framed replies the session sent for one message (SessionTerminated propagates)."""
        self.sent.clear()
        self.failures.failures.clear()
        self.loop.run_until_complete(self.session.handle(message))
        if self.failures.failures:
            raise self.failures.failures[0]
        return list(self.sent)

    def data_tree(self) -> etree._Element:
        """Running as a ``<data>`` wrapper, the way get and get-config filter it."""
        return self.datastores.tree("running")

    def close(self) -> None:
        logging.getLogger(SESSION_LOGGER).removeHandler(self.failures)
        self.loop.close()
        self.state.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)


_schema: Schema | None = None
_fixed: Server | None = None
_shared: Server | None = None
_handled = 0
RESET_EVERY = 5000  # fuzzed edits pile up in the datastore: start over from the same state


def _the_schema() -> Schema:
    global _schema
    if _schema is None:
        _schema = Schema()
    return _schema


def fixed_server() -> Server:
    """A server whose datastores nobody edits (for the filter target)."""
    global _fixed
    if _fixed is None:
        _fixed = Server(_the_schema())
    return _fixed


def shared_server() -> Server:
    """The server the RPC target edits, rebuilt every RESET_EVERY calls."""
    global _shared, _handled
    _handled += 1
    if _shared is not None and _handled % RESET_EVERY == 0:
        _shared.close()
        _shared = None
    if _shared is None:
        _shared = Server(_the_schema())
    return _shared
