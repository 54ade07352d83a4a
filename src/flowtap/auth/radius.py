"""Asynchronous RADIUS (PAP) client for login authentication, on ``pyrad.client_async``.

:func:`authenticate` tries the configured servers in order, each with its own timeout, number of
attempts (``retry``) and source address, and returns:

- :class:`RadiusAccept`: raw ``Juniper-User-Permissions`` values and ``Juniper-Local-User-Name``;
- :class:`RadiusReject`: a server answered with anything but Access-Accept (a reject ends the
  RADIUS method: the next server is only asked when one is silent, as in Junos);
- :class:`RadiusNoAnswer`: no server gave a valid answer. A timeout, an unreachable server, a
  socket error and a wrong shared secret (the server drops the request, or its reply fails the
  authenticator check) all look alike.

The request carries a Message-Authenticator (BlastRADIUS), but replies are not required to carry
one (``enforce_ma`` stays off: FreeRADIUS 3.2.1 does not put one in Access-Accept). The pyrad
dictionary ships as package data (``dictionary.pyrad``) and is loaded once.

Nothing here logs passwords, secrets or user names; pyrad's own log records go to the
``flowtap.auth.pyrad`` logger, reduced to DEBUG details (its warnings would dump raw replies).
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from pyrad import packet as rpacket
from pyrad.client_async import ClientAsync
from pyrad.dictionary import Dictionary

from flowtap.config.model import RadiusServer

log = logging.getLogger(__name__)

JUNIPER_VENDOR_ID = 2636
JUNIPER_LOCAL_USER_NAME = (JUNIPER_VENDOR_ID, 1)
JUNIPER_USER_PERMISSIONS = (JUNIPER_VENDOR_ID, 10)
MAX_PASSWORD_OCTETS = 128  # RFC 2865 section 5.2
MAX_USERNAME_OCTETS = 253
NAS_IDENTIFIER = "flowtap"
PYRAD_LOGGER = "flowtap.auth.pyrad"


@dataclass(frozen=True, slots=True)
class RadiusAccept:
    server: str
    permissions: tuple[str, ...]  # one entry per Juniper-User-Permissions instance (ASCII)
    local_user_name: str | None  # first valid Juniper-Local-User-Name
    dropped_values: int = 0  # VSA values ignored because they were not printable ASCII


@dataclass(frozen=True, slots=True)
class RadiusReject:
    server: str | None  # None: refused locally (the request could not be encoded)
    code: int | None = None


@dataclass(frozen=True, slots=True)
class RadiusNoAnswer:
    servers_tried: int


RadiusResult = RadiusAccept | RadiusReject | RadiusNoAnswer


class _PyradLogFilter(logging.Filter):
    """pyrad logs a transport per request at INFO and raw reply bytes at WARNING: keep INFO
    records at DEBUG only, and strip the arguments (addresses, raw bytes) from the rest."""

    _ARG = re.compile(r"\[%s:%d\]\s*|:?\s*%[sdr]")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return logging.getLogger(__name__).isEnabledFor(logging.DEBUG)
        record.msg = "RADIUS transport: " + self._ARG.sub("", str(record.msg)).strip()
        record.args = ()
        return True


_pyrad_log = logging.getLogger(PYRAD_LOGGER)
_pyrad_log.addFilter(_PyradLogFilter())


@functools.cache
def dictionary() -> Dictionary:
    """The pyrad dictionary (RFC 2865 subset and the Juniper VSAs), parsed once."""
    text = resources.files("flowtap.auth").joinpath("dictionary.pyrad").read_text("ascii")
    return Dictionary(io.StringIO(text))


def _ascii_values(raw: object) -> tuple[list[str], int]:
    """Decode VSA string values; values that are not printable ASCII are dropped (counted)."""
    values: list[str] = []
    dropped = 0
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, bytes):
            dropped += 1
            continue
        try:
            text = item.decode("ascii")
        except UnicodeDecodeError:
            dropped += 1
            continue
        if text.isprintable():
            values.append(text)
        else:
            dropped += 1
    return values, dropped


def parse_accept(server: str, reply: rpacket.Packet) -> RadiusAccept:
    """Pull the Juniper VSAs out of an Access-Accept (raw bytes, decoded defensively)."""
    perms, dropped_p = _ascii_values(dict.get(reply, JUNIPER_USER_PERMISSIONS, []))
    names, dropped_n = _ascii_values(dict.get(reply, JUNIPER_LOCAL_USER_NAME, []))
    return RadiusAccept(
        server=server,
        permissions=tuple(perms),
        local_user_name=(names[0].strip() or None) if names else None,
        dropped_values=dropped_p + dropped_n,
    )


async def _ask(
    server: RadiusServer, username: str, password: str, calling_station: str | None
) -> RadiusResult | None:
    """One server: a result, or None when it stayed silent."""
    client = ClientAsync(
        server=server.address,
        auth_port=server.port,
        secret=server.secret.encode("utf-8"),
        dict=dictionary(),
        retries=max(server.retry - 1, 0),  # YANG ``retry`` = number of attempts
        timeout=server.timeout,
        logger_name=PYRAD_LOGGER,
    )
    try:
        await client.initialize_transports(enable_auth=True, local_addr=server.source_address)
    except OSError as exc:
        log.debug("RADIUS server %s: cannot open a socket (%s)", server.address, exc.strerror)
        return None
    try:
        req = client.CreateAuthPacket(code=rpacket.AccessRequest, User_Name=username)
        req["User-Password"] = req.PwCrypt(password)
        req["NAS-Identifier"] = NAS_IDENTIFIER
        if calling_station:
            req["Calling-Station-Id"] = calling_station[:64]
        reply = await client.SendPacket(req)
    except (TimeoutError, ConnectionAbortedError, OSError) as exc:
        log.debug("RADIUS server %s: no answer (%s)", server.address, type(exc).__name__)
        return None
    finally:
        await client.deinitialize_transports()
    if reply.code == rpacket.AccessAccept:
        return parse_accept(server.address, reply)
    log.debug("RADIUS server %s: code %s", server.address, reply.code)
    return RadiusReject(server=server.address, code=reply.code)


def _encodable(username: str, password: str) -> bool:
    try:
        name = username.encode("utf-8")
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(name) <= MAX_USERNAME_OCTETS and 0 < len(secret) <= MAX_PASSWORD_OCTETS


async def authenticate(
    servers: Sequence[RadiusServer],
    username: str,
    password: str,
    *,
    calling_station: str | None = None,
) -> RadiusResult:
    """Authenticate ``username``/``password`` against ``servers``, in order.

    A user name or password RADIUS cannot carry (empty, over 253/128 octets, not UTF-8) is
    refused without asking: ``RadiusReject(server=None)``.
    """
    if not servers:
        return RadiusNoAnswer(servers_tried=0)
    if not _encodable(username, password):
        return RadiusReject(server=None)
    for index, server in enumerate(servers):
        try:
            result = await _ask(server, username, password, calling_station)
        except ValueError:  # pyrad refused to encode an attribute
            return RadiusReject(server=None)
        except Exception as exc:  # pyrad raises bare Exceptions; count the server as silent
            log.warning("RADIUS server #%d: client error %s", index + 1, type(exc).__name__)
            result = None
        if result is not None:
            return result
        log.debug("RADIUS server #%d silent, trying the next one", index + 1)
    return RadiusNoAnswer(servers_tried=len(servers))


__all__ = [
    "RadiusAccept",
    "RadiusNoAnswer",
    "RadiusReject",
    "RadiusResult",
    "authenticate",
    "dictionary",
    "parse_accept",
]
