"""Sign-in codes at rest: what Redis holds of a code is never the code, nor a bare hash of its digits
(a SHA-256 of six digits is reversed by trying the million of them). Both forms below need a server
key that is not in Redis (security.sign_in_key_path, a file every process that issues, checks or
sends codes reads):

- the digest that issue_sign_in_code stores and sign_in compares: HMAC-SHA256(key, account id, code);
- the sealed code in the notice queued for the notifier: the code XORed with an HMAC-SHA256 key stream
  of the notice's id (unique per notice), then an HMAC tag over id and ciphertext (encrypt-then-MAC),
  so the notifier, holding the key, reads it back and a copy of Redis or of its AOF does not.

Without a key file every process makes its own random key: enough for one process (the tests, a
development server that also runs its notifier), not for several (a code issued by one could not be
checked or sent by another); the first use logs that.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path

from creditd.errors import ConfigError

log = logging.getLogger(__name__)
MIN_KEY_BYTES = 32
TAG_BYTES = 16
SEALED_PREFIX = "s1."
_process_key: list[bytes] = []


def _domain(label: str, *parts: str) -> bytes:
    return b"\0".join([label.encode(), *(part.encode() for part in parts)])


class SignInKey:
    def __init__(self, key: bytes) -> None:
        assert len(key) >= MIN_KEY_BYTES, "a sign-in key has at least 32 bytes"
        self._key = key

    def digest(self, account_id: str, code: str) -> str:
        """What Redis keeps of a code issued to account_id (64 hex digits)."""
        return hmac.new(self._key, _domain("digest", account_id, code), hashlib.sha256).hexdigest()

    def _stream(self, notice_id: str, length: int) -> bytes:
        stream = hmac.new(self._key, _domain("stream", notice_id), hashlib.sha256).digest()
        assert length <= len(stream), "a sign-in code is shorter than one HMAC block"
        return stream[:length]

    def _tag(self, notice_id: str, cipher: bytes) -> bytes:
        return hmac.new(self._key, _domain("tag", notice_id, cipher.hex()), hashlib.sha256).digest()[:TAG_BYTES]

    def seal(self, notice_id: str, code: str) -> str:
        """The code as the notice queued under notice_id holds it."""
        plain = code.encode()
        cipher = bytes(a ^ b for a, b in zip(plain, self._stream(notice_id, len(plain)), strict=True))
        return f"{SEALED_PREFIX}{cipher.hex()}.{self._tag(notice_id, cipher).hex()}"

    def open(self, notice_id: str, sealed: str) -> str | None:
        """The code, or None when it was not sealed under this key and notice id."""
        body = sealed.removeprefix(SEALED_PREFIX)
        cipher_hex, _, tag_hex = body.partition(".")
        try:
            cipher, tag = bytes.fromhex(cipher_hex), bytes.fromhex(tag_hex)
        except ValueError:
            return None
        if not sealed.startswith(SEALED_PREFIX) or not cipher or len(cipher) > 32:
            return None
        if not hmac.compare_digest(self._tag(notice_id, cipher), tag):
            return None
        return bytes(a ^ b for a, b in zip(cipher, self._stream(notice_id, len(cipher)), strict=True)).decode()


def load_sign_in_key(path: str) -> SignInKey:
    """The key in the file at path (at least 32 bytes; its owner alone should read it), or, for an
    empty path, this process's own random key."""
    if not path:
        if not _process_key:
            _process_key.append(secrets.token_bytes(MIN_KEY_BYTES))
            log.warning(
                "security.sign_in_key_path is empty: sign-in codes use a key of this process only; codes"
                " issued here cannot be checked or sent by another process (set it when running several)"
            )
        return SignInKey(_process_key[0])
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"security.sign_in_key_path: cannot read {path}: {error.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"security.sign_in_key_path: {path} holds {len(key)} bytes, at least {MIN_KEY_BYTES} needed")
    return SignInKey(key)
