"""pw_cache.compat.crypto: proxywhirl's CredentialEncryptor on pw-cache's Fernet."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pw_cache.compat import crypto
from pydantic import SecretStr

REFERENCE_PYTHON = Path("/root/.cache/pw-ref-venv/bin/python")


@pytest.fixture(autouse=True)
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.CURRENT_KEY_VAR, raising=False)
    monkeypatch.delenv(crypto.PREVIOUS_KEY_VAR, raising=False)


def test_roundtrip_and_empty_values() -> None:
    encryptor = crypto.CredentialEncryptor()
    assert len(encryptor.key) == 44
    token = encryptor.encrypt(SecretStr("pässword"))
    assert token.startswith(b"gAAAAA")
    assert encryptor.decrypt(token).get_secret_value() == "pässword"
    assert encryptor.encrypt(SecretStr("")) == b""
    assert encryptor.encrypt(None) == b""
    assert encryptor.decrypt(b"").get_secret_value() == ""


def test_wrong_key_and_bad_keys() -> None:
    token = crypto.CredentialEncryptor().encrypt(SecretStr("x"))
    with pytest.raises(ValueError, match="Decryption failed"):
        crypto.CredentialEncryptor().decrypt(token)
    with pytest.raises(ValueError, match="Invalid Fernet key"):
        crypto.CredentialEncryptor(key=b"short")
    with pytest.raises(ValueError, match="Invalid new key format"):
        crypto.rotate_key("nope")


def test_environment_keys_and_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    old = crypto.generate_key().decode()
    monkeypatch.setenv(crypto.CURRENT_KEY_VAR, old)
    token = crypto.CredentialEncryptor().encrypt(SecretStr("secret"))
    new = crypto.generate_key().decode()
    crypto.rotate_key(new)
    assert os.environ[crypto.PREVIOUS_KEY_VAR] == old
    assert crypto.get_encryption_keys() == [new.encode(), old.encode()]
    rotated = crypto.CredentialEncryptor()
    assert rotated.key == new.encode()
    assert rotated.decrypt(token).get_secret_value() == "secret"
    again = rotated._cipher.rotate(token)
    assert (
        crypto.CredentialEncryptor(key=new.encode()).decrypt(again).get_secret_value() == "secret"
    )
    monkeypatch.setenv(crypto.PREVIOUS_KEY_VAR, "garbage")
    with pytest.raises(ValueError, match=f"format in {crypto.PREVIOUS_KEY_VAR}"):
        crypto.get_encryption_keys()


@pytest.mark.skipif(not REFERENCE_PYTHON.exists(), reason="no reference venv with cryptography")
def test_tokens_interoperate_with_cryptography_fernet() -> None:
    key = crypto.generate_key()
    ours = crypto.CredentialEncryptor(key=key).encrypt(SecretStr("from pw-cache"))
    script = (
        "import sys; from cryptography.fernet import Fernet; f = Fernet(sys.argv[1].encode()); "
        "print(f.decrypt(sys.argv[2].encode()).decode()); "
        "print(f.encrypt(b'from cryptography').decode())"
    )
    done = subprocess.run(
        [str(REFERENCE_PYTHON), "-c", script, key.decode(), ours.decode()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    opened, theirs = done.stdout.splitlines()
    assert opened == "from pw-cache"
    decrypted = crypto.CredentialEncryptor(key=key).decrypt(theirs.encode())
    assert decrypted.get_secret_value() == "from cryptography"
