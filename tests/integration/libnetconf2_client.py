"""A NETCONF client on libnetconf2, the C library netopeer2-cli is built on (Debian's package).

Run as a script in its own process (a C library that crashes must not take pytest with it):

    python -m tests.integration.libnetconf2_client HOST PORT USER

with the password on standard input. It connects over SSH as netopeer2-cli's ``connect`` does
(libnetconf2 reads the server's capabilities and yang-library, fetches every module it lacks with
get-schema and builds its libyang context from them), subscribes to the NETCONF stream as
``subscribe`` does, prints one JSON line ``{"event": "subscribed", ...}``, then prints each
notification it receives as ``{"event": "notification", "xml": ...}`` until standard input
closes or ``--notifications N`` arrived. Every message libnetconf2 and libyang log on the way
(errors and warnings) is reported in the JSON lines, so a test can insist there are none.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import sys
from typing import Any

NC_VERB_WARNING = 1
NC_SSH_AUTH_PUBLICKEY, NC_SSH_AUTH_PASSWORD, NC_SSH_AUTH_INTERACTIVE = 0x01, 0x02, 0x04
NC_PARAMTYPE_CONST = 0
NC_MSG_ERROR, NC_MSG_WOULDBLOCK, NC_MSG_REPLY, NC_MSG_NOTIF = 0, 1, 6, 8
LYD_XML, LYD_PRINT_WITHSIBLINGS = 1, 0x01
LY_LLWRN = 1

PRINT_CLB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
LY_LOG_CLB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p)
PASSWORD_CLB = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
HOSTKEY_CLB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)


class Libnetconf2Client:
    """libnetconf2's client API through ctypes: connect, subscribe, receive, print."""

    def __init__(self, user: str, password: str) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self.libc.strdup.restype = ctypes.c_void_p
        self.libc.strdup.argtypes = [ctypes.c_char_p]
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.ly = ctypes.CDLL("libyang.so.2", mode=ctypes.RTLD_GLOBAL)
        self.nc = ctypes.CDLL("libnetconf2.so.2", mode=ctypes.RTLD_GLOBAL)
        self.messages: list[str] = []
        self._password = password.encode()
        # The callbacks must outlive every call that may invoke them.
        self._print = PRINT_CLB(self._on_nc_message)
        self._ly_log = LY_LOG_CLB(self._on_ly_message)
        self._password_clb = PASSWORD_CLB(self._on_password)
        self._hostkey = HOSTKEY_CLB(lambda _host, _ssh, _priv: 0)  # the test's own server
        self._declare()
        self.ly.ly_set_log_clb(self._ly_log, 1)
        self.ly.ly_log_level(LY_LLWRN)
        self.nc.nc_set_print_clb_session(self._print)
        self.nc.nc_verbosity(NC_VERB_WARNING)
        self.nc.nc_client_init()
        self.nc.nc_client_ssh_set_username(user.encode())
        self.nc.nc_client_ssh_set_auth_pref(NC_SSH_AUTH_PUBLICKEY, -1)
        self.nc.nc_client_ssh_set_auth_pref(NC_SSH_AUTH_INTERACTIVE, -1)
        self.nc.nc_client_ssh_set_auth_pref(NC_SSH_AUTH_PASSWORD, 1)
        self.nc.nc_client_ssh_set_auth_password_clb(self._password_clb, None)
        self.nc.nc_client_ssh_set_auth_hostkey_check_clb(self._hostkey, None)
        self.session: int | None = None

    def _declare(self) -> None:
        nc, ly, p = self.nc, self.ly, ctypes.c_void_p
        nc.nc_connect_ssh.restype = p
        nc.nc_connect_ssh.argtypes = [ctypes.c_char_p, ctypes.c_uint16, p]
        nc.nc_session_get_cpblts.restype = ctypes.POINTER(ctypes.c_char_p)
        nc.nc_session_get_cpblts.argtypes = [p]
        nc.nc_session_get_ctx.restype = p
        nc.nc_session_get_ctx.argtypes = [p]
        nc.nc_rpc_subscribe.restype = p
        nc.nc_rpc_subscribe.argtypes = [p, p, p, p, ctypes.c_int]
        nc.nc_send_rpc.argtypes = [p, p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint64)]
        nc.nc_recv_reply.argtypes = [p, p, ctypes.c_uint64, ctypes.c_int,
                                     ctypes.POINTER(p), ctypes.POINTER(p)]
        nc.nc_recv_notif.argtypes = [p, ctypes.c_int, ctypes.POINTER(p), ctypes.POINTER(p)]
        nc.nc_rpc_free.argtypes = [p]
        nc.nc_session_free.argtypes = [p, p]
        nc.nc_client_ssh_set_username.argtypes = [ctypes.c_char_p]
        nc.nc_client_ssh_set_auth_pref.argtypes = [ctypes.c_int, ctypes.c_int16]
        nc.nc_client_ssh_set_auth_password_clb.argtypes = [PASSWORD_CLB, p]
        nc.nc_client_ssh_set_auth_hostkey_check_clb.argtypes = [HOSTKEY_CLB, p]
        nc.nc_set_print_clb_session.argtypes = [PRINT_CLB]
        ly.ly_set_log_clb.argtypes = [LY_LOG_CLB, ctypes.c_int]
        ly.ly_ctx_get_module_implemented.restype = p
        ly.ly_ctx_get_module_implemented.argtypes = [p, ctypes.c_char_p]
        ly.lyd_print_mem.argtypes = [ctypes.POINTER(p), p, ctypes.c_int, ctypes.c_uint32]
        ly.lyd_free_all.argtypes = [p]

    def _on_nc_message(self, _session: int | None, level: int, text: bytes) -> None:
        self.messages.append(f"libnetconf2[{level}]: {text.decode(errors='replace')}")

    def _on_ly_message(self, level: int, text: bytes, path: bytes | None) -> None:
        where = f" ({path.decode(errors='replace')})" if path else ""
        self.messages.append(f"libyang[{level}]: {text.decode(errors='replace')}{where}")

    def _on_password(self, _user: bytes, _host: bytes, _priv: int | None) -> int:
        return int(self.libc.strdup(self._password))  # libnetconf2 frees it

    def connect(self, host: str, port: int) -> dict[str, Any]:
        self.session = self.nc.nc_connect_ssh(host.encode(), port, None)
        if not self.session:
            return {"event": "connect-failed", "messages": self.messages}
        capabilities: list[str] = []
        array = self.nc.nc_session_get_cpblts(self.session)
        while array[len(capabilities)] is not None:
            capabilities.append(array[len(capabilities)].decode())
        ctx = self.nc.nc_session_get_ctx(self.session)
        implemented = [name for name in ("notifications", "nc-notifications", "ietf-netconf",
                                         "flowtap-system", "flowtap-services")
                       if self.ly.ly_ctx_get_module_implemented(ctx, name.encode())]
        return {"event": "connected", "capabilities": capabilities, "implemented": implemented,
                "messages": self.messages}

    def subscribe(self) -> dict[str, Any]:
        rpc = self.nc.nc_rpc_subscribe(None, None, None, None, NC_PARAMTYPE_CONST)
        msgid = ctypes.c_uint64()
        try:
            if self.nc.nc_send_rpc(self.session, rpc, 5000, ctypes.byref(msgid)) != 5:
                return {"event": "subscribe-failed", "step": "send", "messages": self.messages}
            envp, op = ctypes.c_void_p(), ctypes.c_void_p()
            kind = self.nc.nc_recv_reply(self.session, rpc, msgid.value, 10000,
                                         ctypes.byref(envp), ctypes.byref(op))
            reply = self._print_tree(envp)
            self.ly.lyd_free_all(envp)
            self.ly.lyd_free_all(op)
        finally:
            self.nc.nc_rpc_free(rpc)
        ok = kind == NC_MSG_REPLY and "<ok" in reply
        return {"event": "subscribed" if ok else "subscribe-failed", "reply": reply,
                "messages": self.messages}

    def notification(self, timeout_ms: int) -> dict[str, Any] | None:
        envp, op = ctypes.c_void_p(), ctypes.c_void_p()
        kind = self.nc.nc_recv_notif(self.session, timeout_ms, ctypes.byref(envp), ctypes.byref(op))
        if kind == NC_MSG_WOULDBLOCK:
            return None
        if kind != NC_MSG_NOTIF:
            return {"event": "receive-failed", "kind": kind, "messages": self.messages}
        xml = self._print_tree(op)
        self.ly.lyd_free_all(envp)
        self.ly.lyd_free_all(op)
        return {"event": "notification", "xml": xml, "messages": self.messages}

    def _print_tree(self, tree: ctypes.c_void_p) -> str:
        if not tree.value:
            return ""
        text = ctypes.c_void_p()
        self.ly.lyd_print_mem(ctypes.byref(text), tree, LYD_XML, LYD_PRINT_WITHSIBLINGS)
        if not text.value:
            return ""
        printed = ctypes.string_at(text.value).decode()
        self.libc.free(text)
        return printed

    def close(self) -> None:
        if self.session:
            self.nc.nc_session_free(self.session, None)  # sends close-session
            self.session = None
        self.nc.nc_client_destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("user")
    parser.add_argument("--notifications", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait in all")
    args = parser.parse_args()
    client = Libnetconf2Client(args.user, sys.stdin.readline().rstrip("\n"))

    def say(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    try:
        connected = client.connect(args.host, args.port)
        say(connected)
        if connected["event"] != "connected":
            return 1
        subscribed = client.subscribe()
        say(subscribed)
        if subscribed["event"] != "subscribed":
            return 1
        received, waited_ms = 0, 0
        while received < args.notifications and waited_ms < args.timeout * 1000:
            event = client.notification(200)
            waited_ms += 200
            if event is None:
                continue
            say(event)
            if event["event"] != "notification":
                return 1
            received += 1
        return 0 if received == args.notifications else 2
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
