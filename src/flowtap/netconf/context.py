"""What every NETCONF session shares: datastores, library, read filter, the session table and
server statistics. One instance per appliance."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.access import ReadFilter
from flowtap.config.datastores import Datastores
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager
from flowtap.netconf.library import Library
from flowtap.netconf.xpath_pool import XPathPool

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

StateProvider = Callable[[Principal], list[etree._Element]]


@dataclass
class Statistics:
    start_time: float = field(default_factory=time.time)
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0


class ServerContext:
    def __init__(self, schema: Schema, txn: TransactionManager, datastores: Datastores) -> None:
        self.schema = schema
        self.txn = txn
        self.datastores = datastores
        self.library = Library(schema.yang_dir)
        self.read_filter: ReadFilter = datastores.read_filter  # one cache of pruned data
        self.sessions: dict[int, Session] = {}
        self.stats = Statistics()
        self._ids = itertools.count(1)
        self.max_message = 4 * 1024 * 1024
        # an XPath filter may name any advertised module by its name (as libnetconf2 clients
        # write them) or its prefix, the state modules of <get> and get-data included; the
        # configuration modules win where a prefix is shared
        self.default_namespaces = {
            **{m.name: m.namespace for m in self.library.modules},
            **{m.prefix: m.namespace for m in self.library.modules if m.prefix},
            **{name: ns for name, ns in schema.namespace_of.items()},
            **{schema.prefix_of[name]: ns for name, ns in schema.namespace_of.items()},
        }
        # XPath filters that are not provably linear run here, killed at a deadline
        self.xpath_pool = XPathPool()
        # operational-state providers (e.g. the flow-tap service status); each sees the principal
        self.state_providers: list[StateProvider] = []

    def next_session_id(self) -> int:
        return next(self._ids)

    def key_names(self, element: etree._Element) -> tuple[str, ...]:
        node = self.schema.node_for(element)
        return node.keys if node is not None else ()
