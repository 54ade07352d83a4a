"""crypt(3) password hashes: verify ``$6$`` (SHA-512), ``$5$`` (SHA-256) and ``$1$`` (MD5), make
``$6$``.

Uses the ``crypt_r`` package (the stdlib ``crypt`` module is deprecated in 3.11 and gone in
3.13). Comparison is constant-time. Decisions:

- Only the three formats the YANG ``crypt-hash`` type allows are verified; anything else
  (DES, bcrypt, ``*``/``!`` locks, garbage) never matches.
- SHA-crypt cost grows with ``rounds`` and with the password length, so a hash asking for more
  than ``MAX_ROUNDS`` rounds and a password longer than ``MAX_PASSWORD_BYTES`` never match
  (bounded CPU per attempt, whatever the configuration or the client sends).
- :func:`make_hash` uses ``rounds=DEFAULT_ROUNDS`` (glibc's default is 5000, weak for a
  first-boot admin credential) and a 16-character salt from :mod:`secrets`.
- :func:`verify_dummy` burns the same time as a real check, for unknown users (no user
  enumeration by timing).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import string

import crypt_r

log = logging.getLogger(__name__)

MAX_ROUNDS = 1_000_000
DEFAULT_ROUNDS = 100_000
MAX_PASSWORD_BYTES = 511  # libxcrypt: CRYPT_MAX_PASSPHRASE_SIZE (512) incl. the NUL

_SALT_CHARS = string.ascii_letters + string.digits + "./"
_HASH_RE = re.compile(
    r"\$(?P<id>[156])\$(?:rounds=(?P<rounds>[0-9]{1,10})\$)?"
    r"(?P<salt>[./A-Za-z0-9]{1,16})\$(?P<digest>[./A-Za-z0-9]+)"
)
_DIGEST_LEN = {"1": 22, "5": 43, "6": 86}

_DUMMY_SALT = f"$6$rounds={DEFAULT_ROUNDS}$flowtapdummysalt$"


def is_supported_hash(encrypted: str) -> bool:
    """True when ``encrypted`` is a well-formed ``$1$``/``$5$``/``$6$`` hash we can verify."""
    m = _HASH_RE.fullmatch(encrypted)
    if m is None or len(m["digest"]) != _DIGEST_LEN[m["id"]]:
        return False
    if m["rounds"] is not None:
        return m["id"] != "1" and int(m["rounds"]) <= MAX_ROUNDS
    return True


def _crypt(password: str, salt: str) -> str | None:
    try:
        result: str | None = crypt_r.crypt(password, salt)
    except (ValueError, OSError):  # embedded NUL, libc refusing the method
        return None
    return result


def verify(password: str, encrypted: str | None) -> bool:
    """Check ``password`` against a crypt(3) hash in constant time (for a given hash)."""
    if encrypted is None or not is_supported_hash(encrypted):
        if encrypted is not None:
            log.warning("unsupported or over-costly password hash in the configuration ignored")
        verify_dummy(password)
        return False
    if not password or len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        return False
    computed = _crypt(password, encrypted)
    if computed is None:
        return False
    return hmac.compare_digest(
        computed.encode("ascii", "replace"), encrypted.encode("ascii", "replace")
    )


def verify_dummy(password: str) -> None:
    """Spend about as long as :func:`verify` with a real ``$6$`` hash, and match nothing."""
    _crypt(password[:MAX_PASSWORD_BYTES] or "x", _DUMMY_SALT)


def make_salt(rounds: int | None = DEFAULT_ROUNDS) -> str:
    """A ``$6$`` salt string (``$6$rounds=N$<16 chars>``) for :func:`make_hash`."""
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    if rounds is None:
        return f"$6${salt}"
    if not 1000 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be within 1000..{MAX_ROUNDS}")
    return f"$6$rounds={rounds}${salt}"


def make_hash(password: str, rounds: int | None = DEFAULT_ROUNDS) -> str:
    """Hash ``password`` as SHA-512 crypt (``$6$``), e.g. for the first-boot admin credential."""
    if not password:
        raise ValueError("empty password")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password longer than {MAX_PASSWORD_BYTES} bytes")
    result = _crypt(password, make_salt(rounds))
    if result is None or not is_supported_hash(result):
        raise RuntimeError("the C library cannot make SHA-512 crypt hashes")
    return result
