"""Passphrase encryption of model files (``-k/--key``; the role of TAO's encrypted ``.tlt``).

File format (all integers unsigned, big-endian)::

    magic     10 bytes  b"TAOQATENC1"
    kdf       1 byte    1 = scrypt
    log2_n    1 byte    scrypt cost N = 2**log2_n
    r, p      1 byte each
    salt      16 bytes  random per file
    nonce     12 bytes  random per file
    body      AES-256-GCM ciphertext of the whole plain file + 16-byte tag,
              associated data = the 42 header bytes above (so the header cannot be altered)

The AES key is ``scrypt(passphrase UTF-8, salt, N=2**14, r=8, p=1)`` (16 MiB of memory and
30-90 ms on a 2-core machine: cheap per save, slow for guessing). A wrong key or any changed
byte fails authentication: one ``DataError``, never garbage. The file extension does not
matter; the magic bytes decide. An empty key (TAO's default ``""``) means "no key".

Policy for a key given with a plain (unencrypted) file: the file is read as is and a warning is
logged (``qat train -k`` may start from a plain pretrained file). Files encrypted by NVIDIA TAO
use another, undocumented format and cannot be read. TF-free: stdlib + ``cryptography``.
"""

import contextlib
import logging
import os
import struct
import tempfile
from pathlib import Path

from tao_qat.common.errors import DataError, UsageError
from tao_qat.common.fileio import atomic_write_bytes, check_writable_output

logger = logging.getLogger(__name__)

MAGIC = b"TAOQATENC1"
MAGIC_FAMILY = b"TAOQATENC"  # any version of the format
KDF_SCRYPT = 1
DEFAULT_LOG2_N, DEFAULT_R, DEFAULT_P = 14, 8, 1
SALT_BYTES, NONCE_BYTES, TAG_BYTES = 16, 12, 16
_HEADER = struct.Struct(f">{len(MAGIC)}sBBBB{SALT_BYTES}s{NONCE_BYTES}s")
HEADER_BYTES = _HEADER.size  # 42
# Bounds on the KDF parameters read from a file, so a crafted header cannot ask for gigabytes.
_MAX_LOG2_N, _MAX_R, _MAX_P = 20, 32, 16


def normalize_key(key):
    """Return the passphrase as bytes, or None for no key (None or "")."""
    if key is None or key == "" or key == b"":
        return None
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def derive_key(passphrase, salt, log2_n=DEFAULT_LOG2_N, r=DEFAULT_R, p=DEFAULT_P):
    """Return the 32-byte AES key for ``passphrase`` (bytes) and ``salt`` (16 bytes)."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(passphrase)


def is_encrypted_bytes(data):
    """True if ``data`` starts like a file of this format (any version)."""
    return bytes(data[: len(MAGIC_FAMILY)]) == MAGIC_FAMILY


def is_encrypted(path):
    """True if file ``path`` starts with this format's magic bytes (False if missing/short)."""
    try:
        with open(path, "rb") as handle:
            return is_encrypted_bytes(handle.read(len(MAGIC_FAMILY)))
    except (FileNotFoundError, IsADirectoryError):
        return False


def encrypt_bytes(data, key, log2_n=DEFAULT_LOG2_N):
    """Return ``data`` (bytes) encrypted with passphrase ``key`` (str or bytes, not empty)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    passphrase = normalize_key(key)
    if passphrase is None:
        raise UsageError("-k/--key: an empty key cannot encrypt")
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    header = _HEADER.pack(MAGIC, KDF_SCRYPT, log2_n, DEFAULT_R, DEFAULT_P, salt, nonce)
    aes = AESGCM(derive_key(passphrase, salt, log2_n, DEFAULT_R, DEFAULT_P))
    return header + aes.encrypt(nonce, bytes(data), header)


def _parse_header(blob, source):
    if len(blob) < HEADER_BYTES + TAG_BYTES:
        raise DataError(
            f"{source}: truncated encrypted file ({len(blob)} bytes, the header and tag alone "
            f"take {HEADER_BYTES + TAG_BYTES})"
        )
    magic, kdf, log2_n, r, p, salt, nonce = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise DataError(
            f"{source}: encrypted with format {magic.decode('ascii', 'replace')!r}, this "
            f"tao_qat reads {MAGIC.decode('ascii')} (written by a newer version?)"
        )
    if kdf != KDF_SCRYPT or not (
        1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P
    ):
        raise DataError(
            f"{source}: unsupported key derivation in the header (kdf {kdf}, log2_n {log2_n}, "
            f"r {r}, p {p}); the file is corrupt"
        )
    return (log2_n, r, p, salt, nonce), blob[:HEADER_BYTES]


def decrypt_bytes(blob, key, source="<data>"):
    """Return the plain bytes of encrypted ``blob``.

    Raises:
        UsageError: ``key`` is None or empty ("is encrypted; give -k/--key").
        DataError: wrong key, altered or truncated data, unknown format version.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    blob = bytes(blob)
    if not is_encrypted_bytes(blob):
        raise DataError(f"{source}: not an encrypted tao_qat file (no {MAGIC.decode()} header)")
    passphrase = normalize_key(key)
    if passphrase is None:
        raise UsageError(f"{source}: is encrypted; give -k/--key")
    (log2_n, r, p, salt, nonce), header = _parse_header(blob, source)
    aes = AESGCM(derive_key(passphrase, salt, log2_n, r, p))
    try:
        return aes.decrypt(nonce, blob[HEADER_BYTES:], header)
    except InvalidTag:
        raise DataError(
            f"{source}: wrong key (or the file is corrupt): authentication failed"
        ) from None


def load_bytes(path, key=None):
    """Return the plain content of file ``path``, decrypting it when it is encrypted.

    A key given for a plain file is ignored with a warning (module docstring). Raises
    DataError when the file is missing, UsageError when it is encrypted and ``key`` is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    if is_encrypted_bytes(data):
        return decrypt_bytes(data, key, source=str(path))
    if normalize_key(key) is not None:
        logger.warning("%s: is not encrypted; reading it without the key", path)
    return data


def save_bytes(path, data, key=None, force=False):
    """Write ``data`` to ``path`` atomically, encrypted when ``key`` is not empty; return Path.

    Raises OutputExistsError if ``path`` exists and ``force`` is false.
    """
    path = check_writable_output(path, force)
    atomic_write_bytes(path, data if normalize_key(key) is None else encrypt_bytes(data, key))
    return path


def encrypt_file(plain_path, encrypted_path, key, force=False):
    """Encrypt file ``plain_path`` into ``encrypted_path`` (atomic); return the output Path."""
    plain_path = Path(plain_path)
    if not plain_path.is_file():
        raise DataError(f"{plain_path}: file not found")
    if is_encrypted(plain_path):
        raise UsageError(f"{plain_path}: is already encrypted")
    if normalize_key(key) is None:
        raise UsageError("-k/--key: an empty key cannot encrypt")
    return save_bytes(encrypted_path, plain_path.read_bytes(), key=key, force=force)


@contextlib.contextmanager
def decrypt_to_temp(path, key, suffix=None):
    """Yield the Path of a decrypted copy of ``path`` in a private (0700) temp folder.

    The copy keeps the file name (or takes ``suffix``, e.g. ".onnx") and is deleted with its
    folder when the block ends. Prefer in-memory use (``load_bytes``) where a library accepts
    bytes; this is for libraries that need a file name.
    """
    path = Path(path)
    plain = load_bytes(path, key)
    with tempfile.TemporaryDirectory(prefix="tao_qat_plain_") as folder:
        target = Path(folder) / (path.stem + (suffix if suffix is not None else path.suffix))
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(plain)
        yield target


@contextlib.contextmanager
def plain_file(path, key=None, suffix=None):
    """Yield a readable plain file for ``path``: itself when plain, else ``decrypt_to_temp``."""
    path = Path(path)
    if is_encrypted(path):
        with decrypt_to_temp(path, key, suffix) as target:
            yield target
        return
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if normalize_key(key) is not None:
        logger.warning("%s: is not encrypted; reading it without the key", path)
    yield path
