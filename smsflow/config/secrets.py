"""Secrets as references: ``env:NAME`` or ``file:/path``, resolved only where they are used.

The configuration (YAML, the ``sms.config`` topic, ``smsflow config show``) carries the
*reference*; the value is read by the one process that needs it, at the moment it needs it:
the sender resolves an SMSC's password when it binds, the webhooks connector a tenant's signing
secret when it loads the configuration. A Kubernetes Secret mounted as a volume is a file
(``file:/var/run/secrets/smsflow/smsc-uk-password``); one exposed as an environment variable is
``env:NAME``.

A value that is neither form is a *literal*. It is still accepted, for existing configuration
files, with a loud warning: it travels in ``sms.config`` in plain text. ``config show`` masks it
(references are shown, they are not secret). See docs/configuration.md#secrets.

>>> ref = SecretStr("env:SMSC_UK_PASSWORD")
>>> resolve(ref, what="smsc-uk password", environ={"SMSC_UK_PASSWORD": "uk-pass"})
SecretStr('**********')
>>> is_reference("file:/run/secrets/hook")
True
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator, PlainSerializer, SecretStr, SerializationInfo

from smsflow.domain.errors import PermanentError

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "env:"
FILE_PREFIX: Final = "file:"
MASK: Final = "**********"
REVEAL: Final = "reveal_secrets"
"""Serialization context key: ``{REVEAL: True}`` writes literals as they are (to sms.config)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_warned: set[str] = set()


class SecretResolutionError(PermanentError, RuntimeError):
    """A reference could not be resolved (variable unset, file unreadable, value out of range).

    Permanent until the operator fixes the environment: the process that needs the secret stops
    with this message (the sender at bind), or keeps its previous configuration (webhooks)."""


def is_reference(text: str) -> bool:
    return text.startswith((ENV_PREFIX, FILE_PREFIX))


def check_reference(secret: SecretStr) -> SecretStr:
    """Validate a reference's syntax; warn (once per process and value) about a literal."""
    text = secret.get_secret_value()
    if text.startswith(ENV_PREFIX):
        name = text[len(ENV_PREFIX):]
        if not _ENV_NAME.match(name):
            raise ValueError(f"secret reference {text!r}: not an environment variable name")
    elif text.startswith(FILE_PREFIX):
        if not Path(text[len(FILE_PREFIX):]).is_absolute():
            raise ValueError(f"secret reference {text!r}: the file path must be absolute")
    elif text not in _warned:
        _warned.add(text)
        log.warning(
            "a secret is configured as a literal value: it is stored in sms.config in plain "
            "text. Use a reference instead: env:NAME or file:/path (docs/configuration.md#secrets)"
        )
    return secret


def _serialize(secret: SecretStr, info: SerializationInfo) -> str:
    text = secret.get_secret_value()
    if is_reference(text) or (info.context or {}).get(REVEAL):
        return text
    return MASK


SecretRef = Annotated[
    SecretStr, AfterValidator(check_reference), PlainSerializer(_serialize, return_type=str)
]
"""A pydantic field type for any secret: the API key pepper can use it as well
(``api_key_pepper: SecretRef``, then ``resolve(settings.api_key_pepper, what=...)``)."""


def resolve(
    secret: SecretStr | str,
    *,
    what: str,
    environ: Mapping[str, str] | None = None,
    min_length: int = 1,
    max_length: int | None = None,
) -> SecretStr:
    """The value a reference points to (a literal is its own value); ``what`` names the secret
    in errors, which never contain the value."""
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    env = os.environ if environ is None else environ
    if text.startswith(ENV_PREFIX):
        name = text[len(ENV_PREFIX):]
        if name not in env:
            raise SecretResolutionError(f"{what}: environment variable {name} is not set")
        value = env[name]
    elif text.startswith(FILE_PREFIX):
        path = Path(text[len(FILE_PREFIX):])
        try:
            # A trailing newline is an artefact of `echo > file`, never part of the secret.
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretResolutionError(f"{what}: cannot read {path}: {exc.strerror}") from None
    else:
        value = text
    if len(value) < min_length:
        raise SecretResolutionError(f"{what}: shorter than {min_length} characters")
    if max_length is not None and len(value) > max_length:
        raise SecretResolutionError(f"{what}: longer than {max_length} characters")
    return SecretStr(value)

