"""The ``bpf()`` system call through ctypes: maps, program loading, socket attachment (I/O).

Thin typed wrappers over the commands flowtap needs (``linux/bpf.h``); each fills a zeroed
``union bpf_attr`` and turns a failure into :class:`OSError` with the kernel's errno. The
policy (which maps, which program) lives in :mod:`flowtap.dataplane.prefilter`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import socket
import struct

# commands (enum bpf_cmd)
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM = 0, 1, 2, 3
PROG_LOAD = 5
MAP_GET_FD_BY_ID = 14
PROG_TEST_RUN = 10
# map types, map flags, update flags
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_F_NO_PREALLOC = 1
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
# program types
BPF_PROG_TYPE_SOCKET_FILTER = 1
# <asm-generic/socket.h>
SO_ATTACH_BPF = 50

LOG_SIZE = 64 * 1024  # verifier log kept when a load fails
_ATTR_SIZE = 128  # covers every field used here; the kernel reads the rest as zero
_SYSCALL_NR = {"x86_64": 321, "aarch64": 280}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_syscall = _libc.syscall
_syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
_syscall.restype = ctypes.c_long


class ProgramRejected(OSError):
    """The kernel refused to load a program; the message ends with the verifier's log."""


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = _SYSCALL_NR.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(): unknown syscall number on {platform.machine()}")
    res = int(_syscall(nr, cmd, ctypes.addressof(attr), len(attr)))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def _attr(fmt: str, *fields: int | bytes) -> ctypes.Array[ctypes.c_char]:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, attr, 0, *fields)
    return attr


def _addr(buf: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buf)


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "") -> int:
    """A new map; returns its fd (the caller closes it). ``name`` (up to 15 characters of
    ``[A-Za-z0-9_.]``) shows in ``bpftool map``.

    Raises:
        OSError: EPERM without CAP_BPF, EINVAL for sizes the map type refuses, ENOMEM.
    """
    attr = _attr("=6I4x16s", map_type, key_size, value_size, max_entries, flags, 0,
                 name.encode()[:15])
    return _bpf(MAP_CREATE, attr)


def _elem(fd: int, key: bytes, value: ctypes.Array[ctypes.c_char] | None,
          flags: int = 0) -> tuple[ctypes.Array[ctypes.c_char], ctypes.Array[ctypes.c_char]]:
    kbuf = ctypes.create_string_buffer(key, len(key))
    attr = _attr("=I4xQQQ", fd, _addr(kbuf), _addr(value) if value is not None else 0, flags)
    return attr, kbuf


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """Insert or replace one element (see ``BPF_NOEXIST``/``BPF_EXIST``).

    Raises:
        OSError: E2BIG (hash map full), ENOSPC (LPM trie full), ENOMEM, EEXIST/ENOENT
            (flags), EINVAL (key or value size).
    """
    vbuf = ctypes.create_string_buffer(value, len(value))
    attr, _kbuf = _elem(fd, key, vbuf, flags)
    _bpf(MAP_UPDATE_ELEM, attr)


def map_delete(fd: int, key: bytes) -> bool:
    """Delete one element; False when there was none.

    Raises:
        OSError: any failure other than ENOENT.
    """
    attr, _kbuf = _elem(fd, key, None)
    try:
        _bpf(MAP_DELETE_ELEM, attr)
    except FileNotFoundError:
        return False
    return True


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value stored under ``key`` (for an LPM trie: under its longest matching prefix),
    or None.

    Raises:
        OSError: any failure other than ENOENT.
    """
    vbuf = ctypes.create_string_buffer(value_size)
    attr, _kbuf = _elem(fd, key, vbuf)
    try:
        _bpf(MAP_LOOKUP_ELEM, attr)
    except FileNotFoundError:
        return None
    return vbuf.raw


def prog_load(prog_type: int, insns: bytes, license: str = "GPL", name: str = "") -> int:
    """Load a program (``insns``: encoded ``struct bpf_insn``s); returns its fd.

    Raises:
        ProgramRejected: the verifier refused it; the message carries its log.
        OSError: EPERM and other failures before verification.
    """
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = _attr("=IIQQIIQII16s", prog_type, len(insns) // 8, _addr(code), _addr(lic), 1,
                 LOG_SIZE, _addr(log), 0, 0, name.encode()[:15])
    try:
        return _bpf(PROG_LOAD, attr)
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        if not text:
            raise
        raise ProgramRejected(exc.errno, f"{exc.strerror}; verifier log:\n{text}") from None


def prog_test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run a loaded program ``repeat`` times on ``frame`` (an Ethernet frame; a socket
    filter sees it from the network header, ``skb->pkt_type`` from the destination MAC
    against the loopback device's all-zero address) without a device;
    returns ``(return value, mean ns per run)``.

    Raises:
        OSError: the program type cannot be test-run, or the frame is too short.
    """
    data = ctypes.create_string_buffer(frame, len(frame))
    attr = _attr("=IIIIQQII", prog_fd, 0, len(frame), 0, _addr(data), 0, repeat, 0)
    _bpf(PROG_TEST_RUN, attr)
    retval, duration = struct.unpack_from("=I28xI", attr, 4)
    return retval, duration


def attach_bpf(sock: socket.socket, prog_fd: int) -> None:
    """Attach (atomically replace) an eBPF socket filter on ``sock``; the socket holds its
    own reference, so ``prog_fd`` may be closed afterwards.

    Raises:
        OSError: the program is not a socket filter, or the fd is not a program.
    """
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)


def memlock(fd: int) -> int | None:
    """The bytes the kernel charges for a map or program (``memlock`` in its fdinfo)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("memlock:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def map_fd_by_id(map_id: int) -> int:
    """A new fd for the map with this id (another process's map, for inspection).

    Raises:
        OSError: no such map (ENOENT) or not permitted.
    """
    return _bpf(MAP_GET_FD_BY_ID, _attr("=I", map_id))
