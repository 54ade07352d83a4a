"""The X1 listener's TLS: server context from the configured PEM files, and who the peer is.

TLS 1.2 or later with a required client certificate that chains to ``client-ca-file``: an ADMF
without one, or with one from another CA, never gets past the handshake. The ADMF's name is its
certificate subject's CN (as sipgate's NE takes it; LI-HANDOVER.md 2.1).
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from flowtap.config.model import X1Service
from flowtap.errors import CommitFailed

PATH = "/ftsvc:services/ftsvc:flow-tap/ftsvc:x1"


def _failed(leaf: str, detail: str) -> CommitFailed:
    return CommitFailed(f"services flow-tap x1 {leaf}: {detail}", path=f"{PATH}/ftsvc:{leaf}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc)


def server_context(settings: X1Service) -> ssl.SSLContext:
    """The listener's context, the files read now.

    Raises:
        CommitFailed: a path is not absolute, a file cannot be read or holds no usable PEM, or
            the key does not fit the certificate; the message names the leaf.
    """
    for leaf, path in (("certificate-file", settings.certificate_file),
                       ("private-key-file", settings.private_key_file),
                       ("client-ca-file", settings.client_ca_file)):  # fmt: skip
        if not os.path.isabs(path):
            raise _failed(leaf, f"{path!r} is not an absolute path")
        if not os.path.isfile(path):
            raise _failed(leaf, f"{path}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(settings.certificate_file, settings.private_key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise _failed("certificate-file", f"{settings.certificate_file} with "
                      f"{settings.private_key_file}: {_reason(exc)}") from None  # fmt: skip
    try:
        context.load_verify_locations(cafile=settings.client_ca_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise _failed("client-ca-file", f"{settings.client_ca_file}: {_reason(exc)}") from None
    if not context.get_ca_certs():
        raise _failed("client-ca-file", f"{settings.client_ca_file}: no CA certificate in it")
    _check_usage(settings.certificate_file)
    return context


def _check_usage(path: str) -> None:
    """The certificate serves X1 (TLS server) and X3 (TLS client): an extended key usage that
    leaves either out would fail every ADMF or every X3 destination later, one by one."""
    try:
        with open(path, "rb") as pem:
            certificate = x509.load_pem_x509_certificate(pem.read())
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction
    except (OSError, ValueError):
        return  # load_cert_chain read it already; an unusual encoding is its business
    missing = [name for name, oid in (("serverAuth", ExtendedKeyUsageOID.SERVER_AUTH),
                                      ("clientAuth", ExtendedKeyUsageOID.CLIENT_AUTH))
               if oid not in usage]  # fmt: skip
    if missing:
        raise _failed("certificate-file", f"{path}: its extended key usage lacks "
                      f"{' and '.join(missing)} (X1 needs serverAuth, X3 delivery clientAuth)")


def peer_common_name(ssl_object: Any) -> str | None:
    """The subject CN of the verified peer certificate, or None."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    certificate = ssl_object.getpeercert()
    if not certificate:
        return None
    subject: tuple[tuple[tuple[str, str], ...], ...] = certificate.get(  # type: ignore[assignment]
        "subject", ()
    )
    names = [value for rdn in subject for key, value in rdn if key == "commonName"]
    return str(names[-1]) if len(names) == 1 else None  # two CNs: ambiguous, no identity
