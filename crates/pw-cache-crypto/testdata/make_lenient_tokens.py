"""Writes lenient_tokens.txt: variants of Fernet tokens (whitespace, padding, trailing bits,
alphabet) with what Python's `cryptography` 51 (proxywhirl 0.3.3's) makes of each: the
plaintext it decrypts, or a refusal. Our own script; the unit tests of `KeyRing::decrypt_bytes`
read the file. Run with the reference venv:
    /root/.cache/pw-ref-venv/bin/python crates/pw-cache-crypto/testdata/make_lenient_tokens.py

Format, one case a line: `key <base64>` once, then `ok <hex of the variant> <hex of the
plaintext> <what>` or `refused <hex of the variant> - <what>`.
"""
import base64
from pathlib import Path

import cryptography
from cryptography.fernet import Fernet, InvalidToken

KEY = b"tRk1TZ6m9VWkVkgrNbB0tqPVe5o1v4tS3ZXyd6F8f0c="
f = Fernet(KEY)
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def variants(token):
    core = token.rstrip(b"=")
    pad = len(token) - len(core)
    yield token, "canonical"
    for ws, name in [(b" ", "space"), (b"\t", "tab"), (b"\n", "newline"), (b"\r", "carriage return"),
                     (b"\x0c", "form feed"), (b"\x0b", "vertical tab"), (b"\x00", "NUL"),
                     (b"\x1c", "file separator"), (b"\xa0", "byte a0"), (b"\xc2\xa0", "UTF-8 no-break space")]:
        yield token + ws, f"trailing {name}"
        yield ws + token, f"leading {name}"
        yield token[:20] + ws + token[20:], f"{name} inside"
    yield token + b"\r\n", "trailing CRLF"
    yield token[:10] + b" \n\t " + token[10:40] + b"\n" + token[40:], "whitespace runs in several places"
    yield core, f"no padding (canonical {pad})"
    for extra in range(1, 4):
        yield core + b"=" * (pad + extra), f"{pad + extra} padding (canonical {pad})"
    for fewer in range(1, pad):
        yield core + b"=" * (pad - fewer), f"{pad - fewer} padding (canonical {pad})"
    if pad == 2:
        yield core + b"= =", "space between the padding"
        yield core + b"=\n=\n", "newlines between the padding"
    yield core + b" \n", "no padding, trailing whitespace"
    yield core[:30] + b" " + core[30:], "no padding, space inside"
    yield token[:12] + b"=" + token[12:], "'=' inside"
    yield token[:-1 - pad] if pad < 2 else core[:-1], "one character short"
    yield core + b"A" + b"=" * pad, "one character too many"
    std = token.replace(b"-", b"+").replace(b"_", b"/")
    if std != token:
        yield std, "standard alphabet (+ /)"
    # The last character carries 2 (pad 2) or 4 (pad 1) unused bits: set them.
    if pad:
        last = core[-1]
        i = ALPHABET.index(last)
        free = 4 if pad == 2 else 2
        for j in range(i + 1, (i | ((1 << free) - 1)) + 1):
            changed = core[:-1] + ALPHABET[j:j + 1]
            yield changed + b"=" * pad, f"unused bits set ({chr(ALPHABET[j])})"
            yield changed, f"unused bits set ({chr(ALPHABET[j])}), no padding"
            break
    yield token.lower(), "lowercased (another token)"


lines = [f"# cryptography {cryptography.__version__}", f"key {KEY.decode()}"]
for n in (0, 5, 16, 31, 32):
    plaintext = ("pw" * n)[:n].encode() if n else b""
    token = f.encrypt_at_time(plaintext, 1_800_000_000 + n)
    # A token with both '-' and '_' makes the standard-alphabet case meaningful.
    while b"-" not in token or b"_" not in token:
        token = f.encrypt_at_time(plaintext, 1_800_000_000 + n)
    for variant, what in variants(token):
        try:
            got = f.decrypt(variant)
            lines.append(f"ok {variant.hex()} {got.hex() or '-'} {what}")
        except InvalidToken:
            lines.append(f"refused {variant.hex()} - {what}")

Path(__file__).with_name("lenient_tokens.txt").write_text("\n".join(lines) + "\n")
