"""A per-session self-signed certificate for the loopback proxy.

Some clients refuse to send a bearer token over plain HTTP (kubectl drops it, az refuses), so the
proxy can serve HTTPS on 127.0.0.1. The certificate lives only as long as the session and is
trusted only through the session's own config (kubeconfig ``certificate-authority-data``, a CA
bundle file in the session directory): nothing is added to any system trust store.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class SessionCertificate:
    """PEM certificate and (unencrypted) PEM private key; the key never shows in ``repr``."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @classmethod
    def generate(
        cls,
        *,
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
        dns_names: tuple[str, ...] = ("localhost",),
        lifetime: timedelta = timedelta(days=1),
    ) -> SessionCertificate:
        """A P-256 certificate that is its own CA, valid for the loopback names given."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alien debug session")])
        now = datetime.now(UTC)
        san = [x509.DNSName(d) for d in dns_names] + [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context from files (``ssl`` only loads keys from paths: keep them 0600 in the
    session directory)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
