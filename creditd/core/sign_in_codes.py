"""Sign-in codes at rest: what Redis holds of a code is never the code, nor a bare hash of its digits
(a SHA-256 of six digits is reversed by trying the million of them). Both forms below need a server
key that is not in Redis (security.sign_in_key_path, a file every process that issues, checks or
sends codes reads):

- the digest that issue_sign_in_code stores and sign_in compares: HMAC-SHA256(key, account id, code);
- the sealed code in the notice queued for the notifier: the code XORed with an HMAC-SHA256 key stream
  of the notice's id (unique per notice), then an HMAC tag over id and ciphertext (encrypt-then-MAC),
  so the notifier, holding the key, reads it back and a copy of Redis or of its AOF does not.

Without a configured file the key is DATA_DIR/sign_in.key (redis.data_dir), made on first use: every
process of one host shares it; processes on several hosts need sign_in_key_path to one key file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from creditd.errors import ConfigError

log = logging.getLogger(__name__)
MIN_KEY_BYTES = 32
TAG_BYTES = 16
SEALED_PREFIX = "s1."
DEFAULT_KEY_FILE = "sign_in.key"


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


def _make_key_file(path: Path) -> None:
    """A new key file, written aside and linked into place, so that processes starting together
    agree on one (the first link wins) and none reads half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
    with contextlib.suppress(FileExistsError):
        os.link(draft, path)
    draft.unlink()


def make_sign_in_key(directory: Path) -> Path:
    """directory/sign_in.key, made unless it exists (for `sign_in_key_path`; mode 0600)."""
    path = directory / DEFAULT_KEY_FILE
    if not path.exists():
        _make_key_file(path)
    return path


def load_sign_in_key(path: str, data_dir: str) -> SignInKey:
    """The key in the file at path (at least 32 bytes; its owner alone should read it). Without a
    path, DATA_DIR/sign_in.key, made on first use: the server and `creditd notify` of one host share
    it (the embedded server's data folder is 0700); several hosts need a path to one key."""
    if not path:
        default = Path(data_dir) / DEFAULT_KEY_FILE
        if not default.exists():
            log.warning("making the sign-in key %s (security.sign_in_key_path is empty)", default)
        path = str(make_sign_in_key(Path(data_dir)))
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"security.sign_in_key_path: cannot read {path}: {error.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"security.sign_in_key_path: {path} holds {len(key)} bytes, at least {MIN_KEY_BYTES} needed")
    return SignInKey(key)
