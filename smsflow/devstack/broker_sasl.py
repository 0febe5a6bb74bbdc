"""An optional SASL_SSL listener for the local broker (``smsflow broker start --sasl-ssl-port``).

It lets the project's clients be tested the way they connect to a secured cluster (Strimzi, a
managed Kafka): TLS with a certificate signed by a throwaway CA, SCRAM-SHA-512 or PLAIN. The
inter-broker and controller listeners stay PLAINTEXT on loopback.

The material lives in ``<home>/kafka/tls`` and is made once with ``keytool`` (Java 17 has it):
``ca.p12`` (the CA), ``ca.pem`` (what clients trust: ``SMSFLOW_KAFKA_SSL_CA_FILE``),
``broker.p12`` (the broker's key and certificate, SAN ``localhost`` and ``127.0.0.1``) and
``credentials.env`` (``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``, mode 0600). The SCRAM
user is created through the PLAINTEXT listener once the broker serves (idempotent, so it works
on any existing home).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smsflow.devstack.java_service import JavaServiceError, find_executable

USER = "smsflow"
SCRAM_ITERATIONS = 8192
KEYTOOL_TIMEOUT_S = 60.0
VALIDITY_DAYS = "3650"
SAN = "SAN=dns:localhost,ip:127.0.0.1"


class SaslSslError(JavaServiceError):
    """The TLS material or the SCRAM user could not be made."""


@dataclass(frozen=True)
class SaslSslMaterial:
    directory: Path
    store_password: str
    user: str
    password: str

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.p12"

    @property
    def credentials_file(self) -> Path:
        return self.directory / "credentials.env"

    def listener_properties(self, host: str, port: int) -> dict[str, str]:
        """What ``server.properties`` adds for the SASL_SSL listener (merged by broker.py)."""
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{self.user}="{self.password}";'
        )
        return {
            "listener.name.sasl_ssl.ssl.keystore.type": "PKCS12",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "listener.name.sasl_ssl.ssl.keystore.password": self.store_password,
            "listener.name.sasl_ssl.ssl.key.password": self.store_password,
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": plain,
            "_listener": f"SASL_SSL://{host}:{port}",
        }

    def describe(self, host: str, port: int) -> str:
        return (
            f"SASL_SSL listener {host}:{port} (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN)\n"
            f"  CA file:     {self.ca_file}  (SMSFLOW_KAFKA_SSL_CA_FILE)\n"
            f"  credentials: {self.credentials_file}  (user {self.user})"
        )


def ensure_material(directory: Path, java_home: str | None = None) -> SaslSslMaterial:
    """Load the CA, keystore and credentials of ``directory``, making any that are missing."""
    directory.mkdir(parents=True, exist_ok=True)
    creds = _load_or_create_credentials(directory / "credentials.env")
    material = SaslSslMaterial(
        directory, creds["KEYSTORE_PASSWORD"], creds["KAFKA_SASL_USERNAME"],
        creds["KAFKA_SASL_PASSWORD"],
    )
    if not (material.keystore.is_file() and material.ca_file.is_file()):
        _make_keystores(material, find_executable("keytool", java_home, SaslSslError))
    return material


def _load_or_create_credentials(path: Path) -> dict[str, str]:
    if path.is_file():
        return dict(
            line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
        )
    values = {
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": secrets.token_urlsafe(18),
        "KEYSTORE_PASSWORD": secrets.token_hex(18),  # hex: keytool takes "-J…" as a JVM flag
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{key}={value}\n" for key, value in values.items()))
    return values


def _make_keystores(material: SaslSslMaterial, keytool: str) -> None:
    d, pw = material.directory, material.store_password
    ca, broker = str(d / "ca.p12"), str(material.keystore)
    csr, signed = str(d / "broker.csr"), str(d / "broker.pem")
    for stale in (ca, broker, csr, signed, str(material.ca_file)):
        Path(stale).unlink(missing_ok=True)
    store = ("-storetype", "PKCS12", "-storepass", pw, "-keypass", pw)
    steps: list[list[str]] = [
        ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
         "-dname", "CN=smsflow dev CA", "-ext", "bc:c", "-validity", VALIDITY_DAYS,
         "-keystore", ca, *store],
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", pw,
         "-file", str(material.ca_file)],
        ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
         "-dname", "CN=localhost", "-ext", SAN, "-validity", VALIDITY_DAYS,
         "-keystore", broker, *store],
        ["-certreq", "-alias", "broker", "-keystore", broker, "-storepass", pw, "-file", csr],
        ["-gencert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", pw,
         "-infile", csr, "-outfile", signed, "-ext", SAN, "-validity", VALIDITY_DAYS],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(material.ca_file),
         "-keystore", broker, "-storepass", pw],
        ["-importcert", "-noprompt", "-alias", "broker", "-file", signed,
         "-keystore", broker, "-storepass", pw],
    ]
    for step in steps:
        try:
            result = subprocess.run([keytool, *step], capture_output=True, text=True,
                                    timeout=KEYTOOL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SaslSslError(f"keytool {step[0]} took over {KEYTOOL_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            raise SaslSslError(f"keytool {step[0]} failed: {result.stdout}{result.stderr}")


def upsert_scram_user(admin: Any, material: SaslSslMaterial, timeout_s: float = 30.0) -> None:
    """Create (or reset) the SCRAM-SHA-512 and -256 credentials of the material's user."""
    upsert_scram_credentials(admin, material.user, material.password, timeout_s)


def upsert_scram_credentials(admin: Any, user: str, password: str,
                             timeout_s: float = 30.0) -> None:
    """Create (or reset) SCRAM-SHA-512 and -256 credentials of ``user`` (e.g. one per process
    on a broker enforcing ACLs)."""
    from confluent_kafka.admin import (  # deferred: keeps `broker status` fast
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    # One request per mechanism: Kafka refuses two alterations of one user in a request.
    for mechanism in (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256):
        upsert = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(mechanism, SCRAM_ITERATIONS), password.encode(),
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=timeout_s)
