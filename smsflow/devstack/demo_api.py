"""The tenant API on the demo stack: a pepper file, a demo key, ``smsflow api`` as a process.

The key is created through the same path as ``smsflow tenants key create``
(:func:`api.tenants_cli.create_key`), so what the demo prints is an ordinary key: revoke it
with ``smsflow tenants key revoke``.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from api.settings import ApiSettings, resolve_pepper
from api.tenants_cli import create_key
from smsflow.devstack.stack import LocalStack, ManagedProcess, wait_for_port
from smsflow.settings import Settings

DEMO_TENANT = "acme-bank"


def pepper_file(home: Path) -> Path:
    """The demo's HMAC pepper (created once, kept so earlier demo keys stay valid)."""
    path = home / "api-pepper"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        path.chmod(0o600)
    return path


def start_api(stack: LocalStack, settings: Settings, port: int) -> str:
    """Start ``smsflow api`` on ``port`` next to the stack; returns a new key of the demo
    tenant."""
    pepper_path = pepper_file(settings.home)
    # In the stack's environment, so a drill's crash_and_restart("api") starts it the same way.
    stack.env["SMSFLOW_API_KEY_PEPPER_FILE"] = str(pepper_path)
    api = ManagedProcess(
        "api",
        [*stack.smsflow_argv(), "api", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        settings.home / "logs" / "api.log",
    )
    api.start(stack.env)
    stack.processes.append(api)
    key, _record = create_key(
        settings, resolve_pepper(ApiSettings(key_pepper_file=pepper_path)), DEMO_TENANT,
        label="demo",
    )
    wait_for_port("127.0.0.1", port, 60)
    return key


def curl_example(key: str, port: int) -> str:
    return (
        f"curl -sS -X POST http://127.0.0.1:{port}/v1/messages \\\n"
        f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        "  -d '{\"destination\": \"+447700900123\", \"source\": \"ACME\", "
        "\"body\": \"Your code is 123456\"}'"
    )


__all__ = ["DEMO_TENANT", "curl_example", "pepper_file", "start_api"]
