"""Composition root: builds the schema, the state directory, the transaction manager, the
datastores and every live component (commit hook), then boots the persisted configuration
through the same commit pipeline that NETCONF uses."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from importlib import resources
from pathlib import Path
from typing import Any

from lxml import etree

from flowtap import li_commits, oplog
from flowtap.about import version
from flowtap.audit import AuditLog, AuditRecord
from flowtap.auth import passwords
from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.config.datastores import Datastores
from flowtap.config.persist import StateDir, atomic_write
from flowtap.config.schema import Schema
from flowtap.config.txn import Diff, TransactionManager
from flowtap.config.xmlutil import NC_NS
from flowtap.dataplane import Dataplane
from flowtap.dataplane.service import FlowTapService
from flowtap.dtcp.auditing import LiAudit
from flowtap.dtcp.crash_audit import criteria_ended_by_crash
from flowtap.dtcp.criteria_limits import CriteriaLimitsHook
from flowtap.dtcp.service import DtcpService
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.errors import AuditError, BootError, ConfigError
from flowtap.gc_policy import GcPolicy
from flowtap.intercept.registry import Registry
from flowtap.netconf import flowtap_state
from flowtap.netconf.context import ServerContext
from flowtap.netconf.service import NetconfService
from flowtap.netconf.session_ops import install_notifier
from flowtap.x1.crash_audit import tasks_ended_by_crash
from flowtap.x1.service import X1Service
from flowtap.x1.tasking import Tasking

LOG = logging.getLogger(__name__)
SYSTEM_NS = "urn:flowtap:yang:system"
CREDENTIALS_FILE = "admin-credentials"
AUDIT_LOG = Path("audit") / "li-audit.log"
STOP_TIMEOUT = 3.0  # seconds an orderly shutdown may take before the daemon exits regardless


def factory_default_path() -> Path:
    packaged = Path(str(resources.files("flowtap"))) / "_data" / "factory-default.xml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "netconf" / "factory-default.xml"


def intercepts_ended_by_crash(fd: int, end: int, last: dict[str, Any]) -> list[AuditRecord]:
    """The LI audit log's ``recover`` callback: the DTCP criteria and the X1 tasks that were
    tapping when the previous writer died (LI-10)."""
    return [*criteria_ended_by_crash(fd, end, last), *tasks_ended_by_crash(fd, end, last)]


class Appliance:
    def __init__(
        self,
        state_dir: Path,
        init_config: Path | None = None,
        *,
        dtcp_tuning: DtcpTuning | None = None,
    ) -> None:
        """One :class:`Dataplane` for the process: the flow-tap hook opens, swaps and closes
        its capture interfaces (``services flow-tap``); the intercept registry alone installs
        criteria in it and reads its counters, and gets its packet/byte limits through
        :meth:`limit_reached`."""
        self.state_dir = state_dir
        self.init_config = init_config
        self.schema = Schema()
        self.state = StateDir(state_dir)
        self.txn = TransactionManager(self.schema, self.state)
        self.authenticator = Authenticator()
        self.datastores: Datastores | None = None
        self.netconf: NetconfService | None = None
        self.generated_password: str | None = None
        self.dtcp_tuning = dtcp_tuning or DtcpTuning.from_env()
        self.dataplane = Dataplane(on_limit=self.limit_reached)
        # commit hook "flow-tap": starts/stops/rebinds the dataplane's capture interfaces
        self.flow_tap = FlowTapService(dataplane=self.dataplane)
        self.audit_log: AuditLog | None = None
        self.li_audit = LiAudit(None)
        self.registry: Registry | None = None
        self.dtcp: DtcpService | None = None
        self.x1: X1Service | None = None
        self.x1_tasking: Tasking | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gc_policy = GcPolicy()  # no collector pause of 100 ms at 10,000s of criteria

    def limit_reached(self, criteria_id: int) -> None:
        """The dataplane's ``on_limit`` (capture thread): hand it to the registry's loop."""
        loop, registry = self._loop, self.registry
        if loop is not None and registry is not None and not loop.is_closed():
            loop.call_soon_threadsafe(registry.expire_by_limit, criteria_id)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        running = self.state.load_running()
        first_boot = running is None
        if running is None:
            running = self._initial_config()
        try:
            self.audit_log = AuditLog.open(self.state_dir / AUDIT_LOG, intercepts_ended_by_crash)
        except (AuditError, OSError) as exc:
            raise BootError(f"LI audit log: {exc}") from None
        self.li_audit = LiAudit(self.audit_log)
        self.registry = Registry(self.dataplane, self.dtcp_tuning.registry_limits())
        self.registry.on_removed.append(self.li_audit.removal_listener())
        self.datastores = Datastores(self.txn)
        self.ctx = ServerContext(self.schema, self.txn, self.datastores)
        self.ctx.xpath_pool.prestart()
        install_notifier(self.ctx)
        on_auth = oplog.login_listener(self.li_audit.auth_listener(), lambda: self.txn.config)
        self.netconf = NetconfService(self.ctx, self.state_dir, self.authenticator,
                                      on_auth=on_auth)  # fmt: skip
        self.txn.listeners.append(self._log_commit)
        self.txn.unchanged_listeners.append(self._log_commit)
        self.datastores.startup_listeners.append(oplog.startup)
        li_commit = li_commits.listener(self.datastores.grafter, self.li_audit.submit)
        self.txn.listeners.append(li_commit)
        self.txn.unchanged_listeners.append(li_commit)
        # first: its commit (services flow-tap limits) is in force before any DTCP request is
        # served under the new configuration, the boot's included
        self.txn.add_hook(CriteriaLimitsHook(self.registry))
        self.txn.add_hook(self.flow_tap)  # before NETCONF: capture devices fail the commit first
        self.txn.add_hook(self.netconf)
        self.dtcp = DtcpService(
            state_dir=self.state_dir, authenticator=self.authenticator,
            config=lambda: self.txn.config, registry=self.registry, audit=self.li_audit,
            tuning=self.dtcp_tuning,
        )  # fmt: skip
        self.txn.add_hook(self.dtcp)
        # X1 (ETSI TS 103 221-1): a second tasking front-end on the same registry; its tasks'
        # copies are X3 PDUs the capture workers send over TLS with the X1 certificate, and
        # X1 reporting reads each destination's state from the dataplane
        self.x1_tasking = Tasking(self.registry, self.li_audit.submit, self._ne_identifier,
                                  self.dataplane)  # fmt: skip
        self.x1 = X1Service(config=lambda: self.txn.config, handle=self.x1_tasking.handle,
                            audit=self.li_audit.submit,
                            on_tls=self.dataplane.set_x3_tls)  # fmt: skip
        self.txn.add_hook(self.x1)
        registry, dtcp = self.registry, self.dtcp
        # the one path by which criteria end with flow-tap (stop, restart, removal)
        self.flow_tap.on_stop.append(registry.dataplane_stopped)
        self.flow_tap.on_degraded.append(self._record_degradation)
        self.ctx.state_providers.append(flowtap_state.provider(
            self.flow_tap, lambda: len(registry), lambda: dtcp.session_count))  # fmt: skip
        try:
            await self.txn.boot(running, persist=first_boot)
            if first_boot:
                self.datastores.set_startup(self.txn.running_bytes)
            if await self.datastores.recover_pending():
                LOG.warning("an unconfirmed commit was rolled back at boot")
        except ConfigError as exc:
            # what start() opened (the XPath worker it prestarted, the audit log) must close
            # here: left to asyncio.run's teardown, the worker's start never ends and neither
            # does the process
            await self.stop()
            raise BootError(f"configuration refused at boot: {exc.message}") from None
        self.datastores.candidate = etree.fromstring(etree.tostring(self.txn.running))
        self.gc_policy.start()

    def _ne_identifier(self) -> str | None:
        """The configured ``services flow-tap x1 ne-identifier`` (None without x1)."""
        settings = self.x1.settings if self.x1 is not None else None
        return settings.ne_identifier if settings is not None else None

    def _log_commit(self, diff: Diff, principal: Principal | None) -> None:
        oplog.commit(self.schema, diff, principal)

    def _record_degradation(self, reasons: tuple[str, ...], committer: str) -> None:
        """The LI audit log records every change of what flow-tap cannot serve, and who made
        the commit: the change may come from a user who must not be told (li_policy)."""
        self.li_audit.spawn([AuditRecord(
            event="flow-tap", result="degraded" if reasons else "restored",
            principal=committer, reason="; ".join(reasons) or None,
        )])  # fmt: skip

    def _initial_config(self) -> bytes:
        path = self.init_config or factory_default_path()
        parser = etree.XMLParser(resolve_entities=False, no_network=True,
                                 remove_blank_text=True, remove_comments=True)  # fmt: skip
        root = etree.parse(str(path), parser).getroot()
        if root.tag not in (f"{{{NC_NS}}}config", f"{{{NC_NS}}}data"):
            raise BootError(f"{path}: the root element must be <config> or <data>")
        self._generate_admin_credential(root)
        return b"".join(etree.tostring(child) for child in root)

    def _generate_admin_credential(self, root: etree._Element) -> None:
        """No fixed default password anywhere: the first boot makes one for 'admin'."""
        s = f"{{{SYSTEM_NS}}}"
        for user in root.iterfind(f"{s}system/{s}login/{s}user"):
            if user.findtext(f"{s}name") != "admin" or user.find(f"{s}authentication") is not None:
                continue
            password = secrets.token_urlsafe(18)
            auth = etree.SubElement(user, f"{s}authentication")
            etree.SubElement(auth, f"{s}encrypted-password").text = passwords.make_hash(password)
            atomic_write(self.state_dir / CREDENTIALS_FILE,
                         f"user admin\npassword {password}\n".encode())  # fmt: skip
            self.generated_password = password

    def credentials_path(self) -> Path | None:
        path = self.state_dir / CREDENTIALS_FILE
        return path if path.exists() else None

    async def stop(self) -> None:
        await self.gc_policy.stop()
        if self.dtcp is not None:
            await self.dtcp.stop()
        if self.x1 is not None:
            await self.x1.stop()
        if self.netconf is not None:
            self.netconf.close()
        await self.ctx.xpath_pool.close()  # a request in a worker ends now, not at its deadline
        for session in list(self.ctx.sessions.values()):
            await session.end()
        if self.registry is not None:
            self.registry.clear("service stopped")  # recorded: criteria do not survive
            await self.registry.publisher.close()
        await asyncio.to_thread(self.dataplane.stop)
        if self.x1_tasking is not None:
            await self.x1_tasking.drain()
        await self.li_audit.drain()
        if self.audit_log is not None:
            await self.audit_log.close()


async def serve(
    state_dir: Path, init_config: Path | None, ready: asyncio.Event | None = None
) -> None:
    appliance = Appliance(state_dir, init_config)
    await appliance.start()
    port = appliance.netconf.port if appliance.netconf else None
    creds = appliance.credentials_path()
    print(f"flowtapd: NETCONF over SSH on port {port} (subsystem netconf)", flush=True)
    if appliance.dtcp is not None and appliance.dtcp.port is not None:
        print(f"flowtapd: DTCP over SSH on port {appliance.dtcp.port} (subsystem flow-tap-dtcp)",
              flush=True)  # fmt: skip
    else:
        print("flowtapd: DTCP over SSH is off until flow-tap and flow-tap-dtcp are committed "
              "(see netconf/examples/edit-config-flow-tap.xml; default port 32001)", flush=True)
    if creds is not None:
        mode = oct(os.stat(creds).st_mode & 0o777)
        print(f"flowtapd: admin credentials in {creds} (mode {mode})", flush=True)
        print(f"flowtapd: connect: ssh -p {port} admin@127.0.0.1 -s netconf", flush=True)
    print("flowtapd: ready", flush=True)
    oplog.LOG.info("flowtapd %s started: pid %d, state directory %s, NETCONF port %s",
                   version(), os.getpid(), state_dir, port)  # fmt: skip
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    signals: list[str] = []

    def stop_on(sig: signal.Signals) -> None:
        signals.append(sig.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_on, sig)
    await stop.wait()
    oplog.LOG.info("flowtapd stopping (%s)", signals[0] if signals else "asked to")
    try:
        await asyncio.wait_for(appliance.stop(), STOP_TIMEOUT)
    except TimeoutError:
        # SIGTERM must end the daemon within 5 s; what did not close is crash-safe by design
        LOG.warning("shutdown did not finish within %s s; exiting anyway", STOP_TIMEOUT)
    else:
        oplog.LOG.info("flowtapd stopped")
