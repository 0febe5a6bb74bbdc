"""An optional SSL listener requiring a client certificate (``smsflow broker start --ssl-port``).

Mutual TLS is how many managed clusters and Strimzi's ``tls`` authentication admit clients:
no password, a certificate signed by a CA the broker trusts. This listener reuses the dev CA and
broker keystore of broker_sasl.py (``<home>/kafka/tls``) and adds:

* ``truststore.p12``: the CA alone, what the broker checks client certificates against;
* ``client.pem`` / ``client-key.pem``: a client certificate (``CN=smsflow-client``) signed by
  the dev CA and its unencrypted key (mode 0600), what ``SMSFLOW_KAFKA_SSL_CERT_FILE`` /
  ``SMSFLOW_KAFKA_SSL_KEY_FILE`` point at.

``keytool`` makes and signs the keys (as for the broker); ``openssl`` exports the client's key
as PEM, which Python's ``ssl`` (aiokafka, faust) needs and keytool cannot write.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from smsflow.devstack.broker_sasl import (
    KEYTOOL_TIMEOUT_S,
    VALIDITY_DAYS,
    SaslSslError,
    SaslSslMaterial,
    ensure_material,
)
from smsflow.devstack.java_service import find_executable

CLIENT_DNAME = "CN=smsflow-client"


@dataclass(frozen=True)
class MtlsMaterial:
    """The CA, keystore and client certificate of the SSL (client auth) listener."""

    shared: SaslSslMaterial

    @property
    def directory(self) -> Path:
        return self.shared.directory

    @property
    def ca_file(self) -> Path:
        return self.shared.ca_file

    @property
    def truststore(self) -> Path:
        return self.directory / "truststore.p12"

    @property
    def cert_file(self) -> Path:
        return self.directory / "client.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "client-key.pem"

    def listener_properties(self, host: str, port: int) -> dict[str, str]:
        """What ``server.properties`` adds for the SSL listener (merged by broker.py)."""
        pw = self.shared.store_password
        return {
            "listener.name.ssl.ssl.keystore.type": "PKCS12",
            "listener.name.ssl.ssl.keystore.location": str(self.shared.keystore),
            "listener.name.ssl.ssl.keystore.password": pw,
            "listener.name.ssl.ssl.key.password": pw,
            "listener.name.ssl.ssl.truststore.type": "PKCS12",
            "listener.name.ssl.ssl.truststore.location": str(self.truststore),
            "listener.name.ssl.ssl.truststore.password": pw,
            # The point of this listener: no certificate signed by the CA, no connection.
            "listener.name.ssl.ssl.client.auth": "required",
            "_listener": f"SSL://{host}:{port}",
        }

    def describe(self, host: str, port: int) -> str:
        return (
            f"SSL listener {host}:{port} (client certificate required)\n"
            f"  CA file:     {self.ca_file}  (SMSFLOW_KAFKA_SSL_CA_FILE)\n"
            f"  client cert: {self.cert_file}  (SMSFLOW_KAFKA_SSL_CERT_FILE)\n"
            f"  client key:  {self.key_file}  (SMSFLOW_KAFKA_SSL_KEY_FILE)"
        )


def ensure_mtls_material(directory: Path, java_home: str | None = None) -> MtlsMaterial:
    """The shared CA and broker keystore plus the truststore and client certificate, making any
    that are missing."""
    material = MtlsMaterial(ensure_material(directory, java_home))
    if not all(p.is_file() for p in (material.truststore, material.cert_file, material.key_file)):
        keytool = find_executable("keytool", java_home, SaslSslError)
        openssl = find_executable("openssl", None, SaslSslError)
        _make_client_material(material, keytool, openssl)
    return material


def _make_client_material(material: MtlsMaterial, keytool: str, openssl: str) -> None:
    d, pw = material.directory, material.shared.store_password
    ca, client = str(d / "ca.p12"), str(d / "client.p12")
    csr, trust = str(d / "client.csr"), str(material.truststore)
    cert, key = str(material.cert_file), str(material.key_file)
    for stale in (client, csr, trust, cert, key):
        Path(stale).unlink(missing_ok=True)
    store = ("-storetype", "PKCS12", "-storepass", pw, "-keypass", pw)
    steps: list[list[str]] = [
        [keytool, "-importcert", "-noprompt", "-alias", "ca", "-file", str(material.ca_file),
         "-keystore", trust, *store],
        [keytool, "-genkeypair", "-alias", "client", "-keyalg", "RSA", "-keysize", "2048",
         "-dname", CLIENT_DNAME, "-validity", VALIDITY_DAYS, "-keystore", client, *store],
        [keytool, "-certreq", "-alias", "client", "-keystore", client, "-storepass", pw,
         "-file", csr],
        [keytool, "-gencert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", pw,
         "-infile", csr, "-outfile", cert, "-validity", VALIDITY_DAYS],
        # The key leaves the PKCS#12 store unencrypted: Python's ssl takes a PEM key file.
        [openssl, "pkcs12", "-in", client, "-passin", f"pass:{pw}", "-nocerts", "-nodes",
         "-out", key],
    ]
    for step in steps:
        _run(step)
    os.chmod(key, 0o600)


def _run(step: list[str]) -> None:
    what = f"{Path(step[0]).name} {step[1]}"
    try:
        result = subprocess.run(step, capture_output=True, text=True,
                                timeout=KEYTOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SaslSslError(f"{what} took over {KEYTOOL_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        raise SaslSslError(f"{what} failed: {result.stdout}{result.stderr}")
