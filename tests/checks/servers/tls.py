"""A private CA and server certificates with a chosen lifetime, made fresh for each test run."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(path)


def _write_cert(cert: x509.Certificate, path: Path) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _certificate(subject: str, key, issuer: str, issuer_key, days: float, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False)
               .add_extension(_key_usage(ca), critical=True))
    if not ca:
        builder = (builder
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Strict verifiers (urllib3 2 sets VERIFY_X509_STRICT) insist on these."""
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def issue(directory: Path, name: str, days: float) -> tuple[str, str, str]:
    """(CA file, certificate file, key file) for 127.0.0.1, expiring in `days`, signed by a new CA."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(f"{name} test CA", ca_key, f"{name} test CA", ca_key, 3650, ca=True)
    cert = _certificate("127.0.0.1", key, f"{name} test CA", ca_key, days, ca=False)
    return (_write_cert(ca, directory / f"{name}-ca.pem"), _write_cert(cert, directory / f"{name}.pem"),
            _write_key(key, directory / f"{name}.key"))


def self_signed(directory: Path, name: str, days: float) -> tuple[str, str]:
    """(certificate file, key file) signed by its own key: what nobody should trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", key, "127.0.0.1", key, days, ca=False)
    return _write_cert(cert, directory / f"{name}.pem"), _write_key(key, directory / f"{name}.key")
