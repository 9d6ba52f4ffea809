"""Signing secrets at rest: encrypted with a Fernet key when one is configured, in clear otherwise.

A signing secret cannot be hashed like an API key: Beacon needs it back to sign every delivery.
With ``INTRANET_WEBHOOKS_ENCRYPTION_KEY`` set, secrets are stored as ``fernet:<token>``, so a copy
of the database (a backup, a replica, a dump attached to a ticket) does not let anyone forge
deliveries; the key lives in the environment, away from the data. Without a key they are stored
as issued: encryption keyed by something stored next to the data would only look safer, and
deriving the key from ``INTRANET_SECRET_KEY`` would break every endpoint when that key rotates.
Secrets stored in clear before a key was configured keep working (and are sealed when replaced).

This is the only module that imports ``cryptography``.
"""
from __future__ import annotations

from intranet.errors import ConfigurationError

PREFIX = "fernet:"


class SecretBox:
    """Seals secrets for storage and opens them again, with the configured key (or none)."""

    def __init__(self, key: str = "") -> None:
        self._fernet = None
        if key:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(key.encode("ascii"))

    @property
    def encrypting(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        """How *secret* is stored: encrypted when a key is configured."""
        if self._fernet is None:
            return secret
        return PREFIX + self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The secret behind *stored*.

        :raise ConfigurationError: the secret is encrypted and no key, or another key, is configured.
        """
        if not stored.startswith(PREFIX):
            return stored
        if self._fernet is None:
            raise ConfigurationError("This endpoint's signing secret is encrypted, but INTRANET_WEBHOOKS_ENCRYPTION_KEY "
                                     "is not set: set the key it was sealed with.")
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ConfigurationError("This endpoint's signing secret was sealed with another "
                                     "INTRANET_WEBHOOKS_ENCRYPTION_KEY: restore that key, or issue a new secret "
                                     "(`flask intranet webhooks rotate-secret`).") from None


def new_key() -> str:
    """A fresh key for ``INTRANET_WEBHOOKS_ENCRYPTION_KEY``."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")
