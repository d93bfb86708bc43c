"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def atomic_write(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
    overwrite: bool = True,
    encoding: str = "utf-8",
) -> Path:
    """Write *data* to *path* so readers see either the old file or the new one.

    The temporary file lives in the destination folder (rename is atomic only within
    one filesystem). *mode* defaults to the permission bits (0o777 mask: never setuid,
    setgid or sticky) of the regular file being replaced, else 0o644; the file belongs to
    us unless *owner* is given. A symlink at *path* is replaced, not followed (callers that
    mean to write through one pass its real path). With ``overwrite=False`` an existing file raises
    :class:`FileExistsError` and nothing is written.
    """
    target = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    folder = target.parent if str(target.parent) else Path(".")
    existing = None
    with contextlib.suppress(FileNotFoundError):
        existing = target.lstat()  # a symlink is replaced, never followed: its target's mode means nothing here
    if existing is not None and not overwrite:
        raise FileExistsError(f"{target} already exists")
    if mode is None:
        # Permission bits only: setuid, setgid and sticky are never carried over to a file we write.
        mode = (existing.st_mode & 0o777) if existing is not None and stat.S_ISREG(existing.st_mode) else 0o644
    mode &= 0o777

    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if owner is not None and hasattr(os, "fchown"):
                with contextlib.suppress(PermissionError):
                    os.fchown(handle.fileno(), *owner)
            os.fsync(handle.fileno())
        if not overwrite:
            # link() fails if the name appeared meanwhile, unlike rename().
            os.link(tmp_name, target)
            os.unlink(tmp_name)
        else:
            os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(folder)
    return target


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it survives a crash."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_output_path(path: str | os.PathLike[str], *, force: bool, option: str = "--output") -> None:
    """Refuse an output file before any work: an empty name, a directory, or an existing file without *force*.

    Raises :class:`~runbooks.errors.InputError` or :class:`~runbooks.errors.RefusedError` (exit 3).
    """
    from opsbook.runbooks.errors import InputError, RefusedError

    target = Path(path)
    if not str(path).strip():
        raise InputError(f"{option}: empty file name; give a file name, or - for standard output")
    if target.is_dir():
        raise InputError(f"{option} {target} is a directory; give a file name in it")
    if target.exists() and not force:
        raise RefusedError(f"{target} already exists; use --force to overwrite it")


def check_writable_file(path: str | os.PathLike[str], *, option: str) -> None:
    """Refuse, before any work, an output file (``--textfile``, ``--junit-file``) that cannot be written.

    The file is replaced atomically (a temporary file in its folder, then a rename), so what
    must work is creating a file in that folder: this is tried for real (root ignores
    permission bits, a read-only mount does not), and the probe file removed at once.
    Raises :class:`~runbooks.errors.InputError` (exit 3) with one line naming *option* and *path*.
    """
    from opsbook.runbooks.errors import InputError

    text = os.fspath(path)
    if not text.strip():
        raise InputError(f"{option}: empty file name")
    if "\0" in text:
        raise InputError(f"{option}: the file name contains a NUL character")
    target = Path(text)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"cannot write {option} {target}: it is a directory; give a file name in it")
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise InputError(f"cannot write {option} {target}: the folder {folder} {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write {option} {target}: {exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def write_output(path: str | os.PathLike[str], data: bytes, *, force: bool, option: str = "--output") -> Path:
    """Write a generated file atomically for a user's ``--output``: one clear error (exit 3) when it cannot be."""
    from opsbook.runbooks.errors import InputError, RefusedError

    check_output_path(path, force=force, option=option)
    try:
        return atomic_write(path, data, overwrite=force)
    except FileExistsError:  # appeared since the check
        raise RefusedError(f"{path} already exists; use --force to overwrite it") from None
    except IsADirectoryError:
        raise InputError(f"{option} {path} is a directory; give a file name in it") from None
    except OSError as exc:
        raise InputError(f"cannot write {option} {path}: {exc.strerror or exc}") from None
