"""proxywhirl 0.3.3's credential encryption (``proxywhirl.cache.crypto``) on pw-cache's Fernet.

Tokens are made and opened by pw-cache's Rust engine (``pw_cache._native``), not by the
``cryptography`` package; they are ordinary Fernet tokens, so either side opens the other's.
Keys come from the constructor or from ``PROXYWHIRL_CACHE_ENCRYPTION_KEY`` (current) and
``PROXYWHIRL_CACHE_KEY_PREVIOUS`` (older keys, comma-separated, still accepted for reading).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from pydantic import SecretStr

__all__ = [
    "CredentialEncryptor",
    "KeyRingCipher",
    "create_multi_fernet",
    "generate_key",
    "get_encryption_keys",
    "rotate_key",
]

CURRENT_KEY_VAR = "PROXYWHIRL_CACHE_ENCRYPTION_KEY"
PREVIOUS_KEY_VAR = "PROXYWHIRL_CACHE_KEY_PREVIOUS"

_KEY_HELP = (
    "Key must be 32 url-safe base64-encoded bytes. Generate a valid key with: "
    "python -c 'import pw_cache; print(pw_cache._native.generate_key())'"
)


def _native() -> Any:
    from pw_cache import _native as native

    return native


def generate_key() -> bytes:
    """A new random Fernet key (44 url-safe base64 characters), from pw-cache's engine."""
    return str(_native().generate_key()).encode("ascii")


def _as_key_bytes(key: bytes | str) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def validate_key(key: bytes | str) -> bytes:
    """Return ``key`` as bytes if it is a Fernet key, else raise :class:`ValueError`."""
    raw = _as_key_bytes(key)
    try:
        decoded = base64.urlsafe_b64decode(raw)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 32:
        raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes.")
    return raw


class KeyRingCipher:
    """Fernet with one or more keys: encrypts with the first, decrypts with any.

    Stands where proxywhirl has ``cryptography``'s ``Fernet``/``MultiFernet``: ``encrypt``,
    ``decrypt`` and ``rotate`` take and give bytes. Plaintexts are UTF-8 text (what the cache
    stores); other bytes raise :class:`ValueError`.
    """

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("KeyRingCipher needs at least one key")
        self._keys = [validate_key(key).decode("ascii") for key in keys]

    @property
    def keys(self) -> list[bytes]:
        """The keys, current first."""
        return [key.encode("ascii") for key in self._keys]

    def encrypt(self, data: bytes) -> bytes:
        """A Fernet token of ``data`` under the current key."""
        return bytes(_native().encrypt(self._keys, bytes(data).decode("utf-8")))

    def decrypt(self, token: bytes | str) -> bytes:
        """The plaintext of a token made with any of the keys."""
        return str(_native().decrypt(self._keys, _as_key_bytes(token))).encode("utf-8")

    def rotate(self, token: bytes | str) -> bytes:
        """The token re-encrypted under the current key."""
        return bytes(_native().rotate(self._keys, _as_key_bytes(token)))


def _key_from_env(var: str, value: str) -> bytes:
    try:
        return validate_key(value.strip())
    except ValueError as error:
        raise ValueError(f"Invalid Fernet key format in {var}: {error}. {_KEY_HELP}") from error


def get_encryption_keys() -> list[bytes]:
    """Keys from the environment, current first; a fresh key when no current one is set.

    Raises :class:`ValueError` naming the variable when a key is not a Fernet key.
    """
    current = os.environ.get(CURRENT_KEY_VAR)
    keys = [_key_from_env(CURRENT_KEY_VAR, current) if current else generate_key()]
    previous = os.environ.get(PREVIOUS_KEY_VAR)
    if previous:
        for part in previous.split(","):
            if not part.strip():
                continue
            key = _key_from_env(PREVIOUS_KEY_VAR, part)
            if key not in keys:
                keys.append(key)
    return keys


def create_multi_fernet() -> KeyRingCipher:
    """A cipher over :func:`get_encryption_keys` (proxywhirl returned a ``MultiFernet``)."""
    return KeyRingCipher(get_encryption_keys())


def rotate_key(new_key: str) -> None:
    """Make ``new_key`` the current key of this process's environment.

    The current key (if any) becomes ``PROXYWHIRL_CACHE_KEY_PREVIOUS``.
    """
    try:
        validate_key(new_key)
    except ValueError as error:
        raise ValueError(f"Invalid new key format: {error}. {_KEY_HELP}") from error
    current = os.environ.get(CURRENT_KEY_VAR)
    if current:
        os.environ[PREVIOUS_KEY_VAR] = current
    os.environ[CURRENT_KEY_VAR] = new_key


class CredentialEncryptor:
    """Encrypts and decrypts proxy credentials (:class:`SecretStr`) as Fernet tokens.

    With ``key``, that single key; without, the keys of :func:`get_encryption_keys` (the
    environment's current and previous keys, or a fresh key that nothing else will know).
    ``self.key`` is the current key (bytes).
    """

    def __init__(self, key: bytes | str | None = None) -> None:
        if key is None:
            keys = get_encryption_keys()
        else:
            try:
                keys = [validate_key(key)]
            except ValueError as error:
                raise ValueError(f"Invalid Fernet key: {error}") from error
        self._cipher = KeyRingCipher(keys)
        self.key: bytes = keys[0]

    def encrypt(self, secret: SecretStr | None) -> bytes:
        """A token of the secret's value; ``b""`` for ``None`` or an empty value."""
        if not secret:
            return b""
        plaintext = secret.get_secret_value()
        if not plaintext:
            return b""
        try:
            return self._cipher.encrypt(plaintext.encode("utf-8"))
        except Exception as error:
            raise ValueError(f"Encryption failed: {error}") from error

    def decrypt(self, encrypted: bytes | None) -> SecretStr:
        """The secret in a token; ``SecretStr("")`` for empty input.

        Raises :class:`ValueError` ("Decryption failed: …") for a token no key opens.
        """
        if not encrypted:
            return SecretStr("")
        try:
            return SecretStr(self._cipher.decrypt(encrypted).decode("utf-8"))
        except Exception as error:
            raise ValueError(f"Decryption failed: {error}") from error
