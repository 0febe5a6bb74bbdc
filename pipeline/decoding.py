"""The agents' record decoding: waits out a schema-registry outage (see schemas.retrying)."""

from schemas.retrying import decode

__all__ = ["decode"]
