"""crypt(3) verification and $6$ hash generation (vectors made independently with OpenSSL)."""

from __future__ import annotations

import re
import time

import pytest

from flowtap.auth import passwords

# openssl passwd -6|-5|-1 -salt abcdefgh 'correct horse'
SHA512 = (
    "$6$abcdefgh$yIZAF3gQPvtKZO/9qOJKffAKKbtS3ef3qmwyugk4uWVjX8YZf/GV3A8SkFxEPY0T56CcilGrHKLffBs"
    "p6dLMG."
)
SHA256 = "$5$abcdefgh$ruMep1ijHnJPZbETDNiumskxcX3kN4lzZd5VlsqE7eB"
MD5 = "$1$abcdefgh$y6iHhJNbuC0xpbk0w9pm80"
PASSWORD = "correct horse"


@pytest.mark.parametrize("encrypted", [SHA512, SHA256, MD5], ids=["sha512", "sha256", "md5"])
def test_verify_known_vectors(encrypted: str) -> None:
    assert passwords.verify(PASSWORD, encrypted)
    assert not passwords.verify("correct horsE", encrypted)
    assert not passwords.verify(PASSWORD + " ", encrypted)
    assert not passwords.verify("", encrypted)


@pytest.mark.parametrize(
    "encrypted",
    [
        None,
        "",
        "*",
        "!",
        "!" + SHA512,  # locked account
        "abJnggxhB/yWI",  # traditional DES: not allowed by the YANG crypt-hash type
        "$2b$12$abcdefghijklmnopqrstuu7bVZ8m3K8t4v1rj4XJzN7yKf5ZbgDTy",  # bcrypt
        "$6$abcdefgh$short",  # truncated digest
        SHA512[:-1],
        SHA512 + "x",
        "$6$abc\x00def$" + "A" * 86,
        "$7$abcdefgh$" + "A" * 86,
        "$1$rounds=5000$abcdefgh$y6iHhJNbuC0xpbk0w9pm80",  # MD5 has no rounds
    ],
)
def test_unsupported_or_malformed_hashes_never_match(encrypted: str | None) -> None:
    assert not passwords.verify(PASSWORD, encrypted)


def test_make_hash_is_sha512_with_rounds_and_verifies() -> None:
    encrypted = passwords.make_hash("first boot admin")
    assert re.fullmatch(r"\$6\$rounds=100000\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{86}", encrypted)
    assert passwords.is_supported_hash(encrypted)
    assert passwords.verify("first boot admin", encrypted)
    assert not passwords.verify("first boot admiN", encrypted)
    # the first-boot hash also fits the YANG crypt-hash pattern
    yang = r"\$(1|5|6)\$(rounds=[0-9]+\$)?[a-zA-Z0-9./]{1,16}\$[a-zA-Z0-9./]+"
    assert re.fullmatch(yang, encrypted)


def test_make_hash_salts_differ() -> None:
    assert passwords.make_hash("same", rounds=1000) != passwords.make_hash("same", rounds=1000)


def test_make_hash_default_rounds_variant() -> None:
    encrypted = passwords.make_hash("glibc default", rounds=None)
    assert re.fullmatch(r"\$6\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{86}", encrypted)
    assert passwords.verify("glibc default", encrypted)


def test_make_hash_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        passwords.make_hash("")
    with pytest.raises(ValueError):
        passwords.make_hash("x" * (passwords.MAX_PASSWORD_BYTES + 1))
    with pytest.raises(ValueError):
        passwords.make_hash("ok", rounds=999)
    with pytest.raises(ValueError):
        passwords.make_hash("ok", rounds=passwords.MAX_ROUNDS + 1)


def test_over_costly_hash_is_refused_without_hashing() -> None:
    # a configured hash demanding 999,999,999 rounds would take minutes per attempt
    costly = "$6$rounds=999999999$abcdefgh$" + "A" * 86
    start = time.perf_counter()
    assert not passwords.verify(PASSWORD, costly)
    assert time.perf_counter() - start < 1.0


def test_overlong_and_nul_passwords_never_match() -> None:
    long_pw = "a" * (passwords.MAX_PASSWORD_BYTES + 1)
    encrypted = passwords.make_hash("a" * passwords.MAX_PASSWORD_BYTES, rounds=1000)
    assert passwords.verify("a" * passwords.MAX_PASSWORD_BYTES, encrypted)
    assert not passwords.verify(long_pw, encrypted)
    assert not passwords.verify("correct\x00horse", SHA512)


def test_non_ascii_password() -> None:
    encrypted = passwords.make_hash("pässwörd ✓", rounds=1000)
    assert passwords.verify("pässwörd ✓", encrypted)
    assert not passwords.verify("passwort ✓", encrypted)
    assert not passwords.verify("\udcff", encrypted)  # lone surrogate: cannot be encoded


def test_verify_dummy_runs_a_real_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown user costs one real crypt() call, like a known one (no timing oracle)."""
    calls: list[str] = []
    real = passwords._crypt

    def counting(password: str, salt: str) -> str | None:
        calls.append(salt)
        return real(password, salt)

    monkeypatch.setattr(passwords, "_crypt", counting)
    passwords.verify("wrong", passwords.make_hash("x", rounds=1000))
    passwords.verify_dummy("wrong")
    assert len(calls) == 2 + 1 and calls[-1].startswith("$6$")  # make_hash, verify, dummy
