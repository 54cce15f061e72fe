"""The cluster secret: the password every pysyncobj voter of one cluster runs with.

pysyncobj unpickles every frame that reaches its Raft port; with a password it first decrypts and
authenticates the frame (Fernet), so only holders of the secret can talk to a voter. The secret is
generated with ``secrets`` at first start and kept, mode 0600, as ``cluster.secret`` in the metadata
directory; later starts load it. Every voter of a multi-node cluster needs the same file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

SECRET_FILE_NAME = "cluster.secret"
SECRET_BYTES = 32
_MIN_SECRET_CHARS = 16


class ClusterSecretError(ValueError):
    """The secret file exists but cannot be used (too short, unreadable text, readable by others)."""


def secret_path(metadata_dir: Path) -> Path:
    """Where the cluster secret of ``metadata_dir`` lives."""
    return metadata_dir / SECRET_FILE_NAME


def read_cluster_secret(metadata_dir: Path) -> str:
    """The stored secret; ``FileNotFoundError`` if there is none, ``ClusterSecretError`` if it is unusable."""
    return read_secret_file(secret_path(metadata_dir))


def read_secret_file(path: Path) -> str:
    """The secret in file ``path`` (mode 0600); ``FileNotFoundError`` or ``ClusterSecretError`` as above."""
    with open(path, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        raw = file.read(4096)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClusterSecretError(f"{path} is accessible by other users; make it mode 0600")
    try:
        secret = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ClusterSecretError(f"{path} is not an ASCII secret") from None
    return check_secret(secret, str(path))


def check_secret(secret: str, source: str) -> str:
    """``secret`` if it is long enough, else ``ClusterSecretError`` naming ``source``."""
    if len(secret) < _MIN_SECRET_CHARS:
        raise ClusterSecretError(f"{source} holds a secret shorter than {_MIN_SECRET_CHARS} characters")
    return secret


def ensure_cluster_secret(metadata_dir: Path) -> str:
    """The secret of ``metadata_dir``, generated and stored (mode 0600) if there is none yet."""
    metadata_dir.mkdir(parents=True, exist_ok=True)
    try:
        return read_cluster_secret(metadata_dir)
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(SECRET_BYTES)
    path = secret_path(metadata_dir)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
            os.link(temporary, path)
        _fsync_directory(metadata_dir)
    finally:
        temporary.unlink(missing_ok=True)
    return read_cluster_secret(metadata_dir)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_cluster_secret(
    metadata_dir: Path, *, secret_file: Path | None, secret_text: str | None, single_voter: bool
) -> str:
    """The secret a voter runs with: ``secret_file``, else ``secret_text``, else the stored one.

    With none of them, a single-voter quorum generates and stores one; a voter of a larger quorum
    fails with ``ClusterSecretError``, because every voter must hold the same secret.
    """
    if secret_file is not None:
        return read_secret_file(secret_file)
    if secret_text:
        return check_secret(secret_text.strip(), "the given cluster secret")
    try:
        return read_cluster_secret(metadata_dir)
    except FileNotFoundError:
        if single_voter:
            return ensure_cluster_secret(metadata_dir)
    raise ClusterSecretError(
        f"no cluster secret: every voter needs the same one. Pass --cluster-secret-file PATH (a mode 0600 file), "
        f"set RAFTKAFKA_CLUSTER_SECRET, or copy one voter's secret to {secret_path(metadata_dir)}"
    )
