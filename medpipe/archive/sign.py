"""The signed seal: an Ed25519 signature of ``index.json`` (which lists every file of the archive with its size and
SHA-256), kept in ``SIGNATURE`` beside ``SEAL``.

The SEAL alone is a SHA-256 without a key: it detects accidental damage, but whoever rewrites the index can write a
matching SEAL. A signature made with a private key can only be checked, never remade, with the public key; so an
archive verified with ``--key PUBLIC`` is exactly as its signer built it.

Keys are standard PEM files, PKCS#8 for the private key and SubjectPublicKeyInfo for the public key, so keys made
elsewhere work too: ``openssl genpkey -algorithm ed25519 -out key.pem`` and
``openssl pkey -in key.pem -pubout -out key.pub``.

``SIGNATURE``::

    medpipe-signature/1
    ed25519 <key id: first 16 hex digits of the SHA-256 of the raw public key> <base64 signature of index.json>
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from .index import INDEX, SIGNATURE, ArchiveError

SIGNATURE_FORMAT = "medpipe-signature/1"
UNSIGNED = "unsigned: accidental damage is detected, deliberate edits are not"


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ArchiveError("signing needs the 'cryptography' package: pip install -r requirements.txt") from None
    return serialization, ed25519


def key_id(public) -> str:
    serialization, _ = _crypto()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(private_path: Path, public_path: Path) -> str:
    """A new Ed25519 key pair as PEM files (the private one readable by its owner only); returns the key id."""
    serialization, ed25519 = _crypto()
    for p in (private_path, public_path):
        if Path(p).exists():
            raise ArchiveError(f"{p}: already exists; keygen never overwrites a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    mask = os.umask(0o077)  # the private key is readable by its owner only, from its first byte
    try:
        atomic_write_bytes(Path(private_path), private)
    finally:
        os.umask(mask)
    atomic_write_bytes(Path(public_path), public)
    return key_id(key.public_key())


def _read_pem(path: Path) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read the key ({exc.strerror or exc})") from None
    if len(data) > 64 * 1024 or b"-----BEGIN" not in data:
        raise ArchiveError(f"{path}: not a PEM key file (expected '-----BEGIN PRIVATE KEY-----' or "
                           "'-----BEGIN PUBLIC KEY-----'; make one with 'archive keygen')")
    return data


def load_private(path: Path):
    serialization, ed25519 = _crypto()
    data = _read_pem(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ArchiveError(f"{path}: the private key is encrypted; give an unencrypted PKCS#8 key (openssl pkey "
                           "-in KEY -out PLAIN)") from None
    except (ValueError, binascii.Error) as exc:
        raise ArchiveError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ArchiveError(f"{path}: a {type(key).__name__}, not an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def load_public(path: Path):
    """A public key (SubjectPublicKeyInfo PEM); a private key file is accepted too (its public half is used)."""
    serialization, ed25519 = _crypto()
    data = _read_pem(path)
    if b"PRIVATE KEY" in data:
        return load_private(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, binascii.Error) as exc:
        raise ArchiveError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ArchiveError(f"{path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def sign_archive(folder: Path, private) -> str:
    """Write SIGNATURE for the archive's index.json (call after the SEAL is written); returns the key id."""
    signature = private.sign((Path(folder) / INDEX).read_bytes())
    kid = key_id(private.public_key())
    atomic_write_text(Path(folder) / SIGNATURE, f"{SIGNATURE_FORMAT}\ned25519 {kid} "
                                                f"{base64.b64encode(signature).decode()}\n")
    return kid


def _read_signature(path: Path) -> tuple[str, bytes]:
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    parts = lines[1].split(" ") if len(lines) > 1 else []
    if not lines or lines[0] != SIGNATURE_FORMAT or len(parts) != 3 or parts[0] != "ed25519":
        raise ArchiveError(f"{path}: damaged (expected '{SIGNATURE_FORMAT}' then 'ed25519 <key id> <signature>')")
    try:
        return parts[1], base64.b64decode(parts[2], validate=True)
    except binascii.Error:
        raise ArchiveError(f"{path}: damaged (the signature is not base64)") from None


def check_signature(folder: Path, key: Path | None, require: bool, say=None) -> str:
    """'signed by <key id>' when the signature verifies with ``key``; 'unsigned' (said once through ``say``) when
    there is no key to check with and none is required; ArchiveError otherwise. Runs before any payload is read."""
    folder = Path(folder)
    path = folder / SIGNATURE
    public = load_public(key) if key is not None else None  # a wrong key file is said first
    if not path.is_file():
        if key is not None or require:
            raise ArchiveError(f"{folder}: unsigned (no {SIGNATURE} file), but a signature is required "
                               f"({'--key' if key is not None else '--require-signature'}); refused")
        if say:
            say(f"[yellow]{UNSIGNED}[/]")
        return "unsigned"
    kid, signature = _read_signature(path)
    if key is None:
        if require:
            raise ArchiveError(f"{path}: signed by key {kid}; give its public key with --key to check it")
        if say:
            say(f"[yellow]signed by key {kid}, not checked (no --key): {UNSIGNED.split(': ', 1)[1]}[/]")
        return "unsigned"
    from cryptography.exceptions import InvalidSignature

    if key_id(public) != kid:
        raise ArchiveError(f"{path}: signed by key {kid}, not by {key} (key {key_id(public)}); refused")
    try:
        public.verify(signature, (folder / INDEX).read_bytes())
    except InvalidSignature:
        raise ArchiveError(f"{path}: the signature does not match {INDEX} (key {kid}): the archive was edited "
                           "after it was signed; refused") from None
    if say:
        say(f"[green]signature ok[/]: signed by key {kid}")
    return f"signed by {kid}"
