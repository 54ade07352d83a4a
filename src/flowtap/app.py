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

from lxml import etree

from flowtap.auth import passwords
from flowtap.auth.authenticator import Authenticator
from flowtap.datastores import Datastores
from flowtap.errors import NetconfRpcError
from flowtap.netconf.context import ServerContext
from flowtap.netconf.service import NetconfService
from flowtap.netconf.session_ops import install_notifier
from flowtap.persist import StateDir, atomic_write
from flowtap.schema import NC_NS, Schema
from flowtap.txn import TransactionManager

LOG = logging.getLogger(__name__)
SYSTEM_NS = "urn:flowtap:yang:system"
CREDENTIALS_FILE = "admin-credentials"


def factory_default_path() -> Path:
    packaged = Path(str(resources.files("flowtap"))) / "_data" / "factory-default.xml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "netconf" / "factory-default.xml"


class BootError(Exception):
    """The appliance cannot start on this configuration."""


class Appliance:
    def __init__(self, state_dir: Path, init_config: Path | None = None) -> None:
        self.state_dir = state_dir
        self.init_config = init_config
        self.schema = Schema()
        self.state = StateDir(state_dir)
        self.txn = TransactionManager(self.schema, self.state)
        self.authenticator = Authenticator()
        self.datastores: Datastores | None = None
        self.netconf: NetconfService | None = None
        self.generated_password: str | None = None

    async def start(self) -> None:
        running = self.state.load_running()
        first_boot = running is None
        if running is None:
            running = self._initial_config()
        self.datastores = Datastores(self.txn)
        self.ctx = ServerContext(self.schema, self.txn, self.datastores)
        install_notifier(self.ctx)
        self.netconf = NetconfService(self.ctx, self.state_dir, self.authenticator)
        self.txn.add_hook(self.netconf)
        try:
            await self.txn.boot(running, persist=first_boot)
            if first_boot:
                self.datastores.set_startup(self.txn.running_bytes)
            if await self.datastores.recover_pending():
                LOG.warning("an unconfirmed commit was rolled back at boot")
        except NetconfRpcError as exc:
            raise BootError(f"configuration refused at boot: {exc.message}") from None
        self.datastores.candidate = etree.fromstring(etree.tostring(self.txn.running))

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
        if self.netconf is not None and self.netconf.listener is not None:
            self.netconf.listener.close()
        for session in list(self.ctx.sessions.values()):
            await session.end()


async def serve(
    state_dir: Path, init_config: Path | None, ready: asyncio.Event | None = None
) -> None:
    appliance = Appliance(state_dir, init_config)
    await appliance.start()
    port = appliance.netconf.port if appliance.netconf else None
    creds = appliance.credentials_path()
    print(f"flowtapd: NETCONF over SSH on port {port} (subsystem netconf)", flush=True)
    if creds is not None:
        mode = oct(os.stat(creds).st_mode & 0o777)
        print(f"flowtapd: admin credentials in {creds} (mode {mode})", flush=True)
        print(f"flowtapd: connect: ssh -p {port} admin@127.0.0.1 -s netconf", flush=True)
    print("flowtapd: ready", flush=True)
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await appliance.stop()
