"""The move journal: one JSON file in the state dir, rewritten atomically after every step.

A crash at any step leaves a journal that says how far the move went, so ``rollback``
(or a new ``move``) can bring the host back to a known state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opsbook.runbooks.errors import InputError, RefusedError
from opsbook.runbooks.fsutil import atomic_write

IN_PROGRESS = "in-progress"
VERIFIED = "verified"
ROLLED_BACK = "rolled-back"
FAILED = "failed"
CLEANED = "cleaned"


class UntrustedStateError(RefusedError):
    """The state dir, or a file in it, could have been written by someone else than root."""


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def _writable_by_others(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _describe(path: str, st: os.stat_result) -> str:
    return f"{path} (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})"


def check_ancestors(folder: str | os.PathLike[str]) -> None:
    """Refuse a folder that a user other than root (or us) could replace or fill.

    Every folder from / down to *folder*'s real parent must be owned by root or by us and
    not writable by group or others -- except a sticky folder such as /tmp, where others
    cannot rename or delete what is ours. *folder* itself must not be a symlink.
    """
    path = os.path.abspath(folder)
    if os.path.islink(path):
        raise UntrustedStateError(f"the state dir {path} is a symlink: refusing to trust it (give its real path)")
    current = "/"
    for part in Path(os.path.realpath(os.path.dirname(path))).parts[1:]:
        current = os.path.join(current, part)
        try:
            st = os.stat(current)
        except FileNotFoundError:
            return  # created later by make_folder, below what was checked
        if not _owner_ok(st) or (_writable_by_others(st) and not st.st_mode & stat.S_ISVTX):
            raise UntrustedStateError(
                f"the state dir {path} is below {_describe(current, st)}, which another user could change: "
                "use a state dir whose every parent is owned by root and not writable by others"
            )


def check_private(path: str | os.PathLike[str], st: os.stat_result, what: str) -> None:
    """Refuse a state folder or file that is not ours alone (owner root/us, no group/other write, no link)."""
    name = os.fspath(path)
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedStateError(f"{what} {name} is a symlink: refusing to follow it")
    if not _owner_ok(st):
        raise UntrustedStateError(f"{what} {_describe(name, st)} belongs to another user: refusing to trust it")
    if _writable_by_others(st):
        raise UntrustedStateError(
            f"{what} {_describe(name, st)} is writable by group or others: "
            f"refusing to trust it (chmod go-w, after checking its content)"
        )


def read_private(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a state file, opened without following a symlink and checked to be ours alone."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        check_private(path, os.fstat(fd), what)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class Journal:
    """The journal of the last move under ``STATE_DIR/docker-root/``.

    The state dir is input to a root process (the journal names commands that are run and
    paths that are written and deleted), so it is trusted only when no other user could
    have written it: see :func:`check_ancestors` and :func:`check_private`.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(os.path.abspath(state_dir))
        self.folder = self.state_dir / "docker-root"
        self.path = self.folder / "journal.json"
        self.data: dict[str, Any] = {}
        self._trusted = False

    def exists(self) -> bool:
        """Whether a journal was written before (a symlink counts, and is refused on load)."""
        return os.path.lexists(self.path)

    def require(self) -> None:
        """Refuse (exit 3), before the lock creates the state dir, when no move was journaled here."""
        if not self.exists():
            self.load()  # raises the one-line "no move journal at ..." error

    def engine_defaults(self, docker_host: str | None, daemon_json: str | None) -> tuple[str | None, str]:
        """The engine URL and daemon.json to use: the ones given, else the ones the move recorded."""
        return docker_host or self.data.get("docker_host") or None, daemon_json or str(self.data["daemon_json"])

    def trust(self) -> None:
        """Check the state dir and its folder (once); UntrustedStateError (exit 3) when others could write them."""
        if self._trusted:
            return
        check_ancestors(self.state_dir)
        for folder, what in ((self.state_dir, "the state dir"), (self.folder, "the state folder")):
            with contextlib.suppress(FileNotFoundError):
                check_private(folder, os.lstat(folder), what)
        self._trusted = True

    def load(self) -> Journal:
        """Read the journal (InputError when it is unreadable, UntrustedStateError when others could write it)."""
        self.data = read_journal(self, self.path)
        return self

    def make_folder(self) -> None:
        """Create the state folder (mode 0700: it holds daemon.json backups)."""
        self.trust()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.mkdir(exist_ok=True, mode=0o700)
        self._trusted = False
        self.trust()
        os.chmod(self.folder, 0o700, follow_symlinks=False)

    def history(self) -> list[dict[str, Any]]:
        """The archived journals of earlier moves (unreadable ones are left out), oldest first."""
        out = []
        for path in sorted(self.folder.glob("journal.*.json")):
            with contextlib.suppress(InputError):
                out.append(read_journal(self, path))
        return out

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state dir's lock: one move/rollback/cleanup at a time (released if we die)."""
        self.make_folder()
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            check_private(self.folder / "lock", os.fstat(fd), "the lock file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RefusedError(f"another opsbook docker-root command holds {self.folder / 'lock'}") from None
            yield
        finally:
            os.close(fd)

    def archive(self) -> Path:
        """Move the journal aside (journal.ID.json) before a new move starts."""
        name = self.folder / f"journal.{self.data.get('id', 'old')}.json"
        n = 1
        while name.exists():
            n += 1
            name = self.folder / f"journal.{self.data.get('id', 'old')}.{n}.json"
        os.replace(self.path, name)
        return name

    def start(self, **fields: Any) -> None:
        """Begin a new move (the folder is created with mode 0700)."""
        self.make_folder()
        self.data = {
            "version": 1,
            "id": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            "status": IN_PROGRESS,
            "steps": [],
            **fields,
        }
        self.save()

    def save(self) -> None:
        """Write the journal atomically."""
        self.data["updated_at"] = time.time()
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n", mode=0o600)

    def step(self, name: str, state: str, **fields: Any) -> None:
        """Record that step *name* is ``started``/``done``/``failed`` (and save)."""
        self.data.setdefault("steps", []).append({"name": name, "state": state, "at": time.time()})
        self.data.update(fields)
        self.save()

    def set(self, **fields: Any) -> None:
        """Update fields and save."""
        self.data.update(fields)
        self.save()

    def started(self, name: str) -> bool:
        """Whether step *name* was begun (whatever happened next)."""
        return any(s["name"] == name for s in self.data.get("steps", []))

    def done(self, name: str) -> bool:
        """Whether step *name* finished."""
        return any(s["name"] == name and s["state"] == "done" for s in self.data.get("steps", []))

    @property
    def status(self) -> str:
        """in-progress, verified, failed, rolled-back or cleaned."""
        return str(self.data.get("status", ""))

    @property
    def unfinished(self) -> bool:
        """A move that neither verified nor rolled back (crashed, or failed before the stop)."""
        return self.status in (IN_PROGRESS, FAILED)

    def reusable_copy(self, target: str) -> bool:
        """Whether TARGET holds only this move's partial copy, which a new move to it may reuse.

        Not once the engine ran verified on TARGET: what was created there since belongs
        to the user (rollback leaves it behind; a new copy with --delete would erase it).
        """
        if not self.data or os.path.abspath(str(self.data.get("target", ""))) != os.path.abspath(target):
            return False
        return self.status in (IN_PROGRESS, FAILED, ROLLED_BACK) and not self.data.get("verified_at")

    def read_backup(self, path: str) -> bytes:
        """A daemon.json backup named by the journal: only from this state folder, and ours alone."""
        if os.path.dirname(os.path.abspath(path)) != str(self.folder):
            raise UntrustedStateError(f"the journal names a backup outside {self.folder}: {path}")
        return read_private(path, "the backup")

    def backup_path(self, name: str = "daemon.json") -> Path:
        """Where this move keeps the previous daemon.json (or containerd's config.toml)."""
        return self.folder / f"{name}.{self.data['id']}.bak"


def read_journal(j: Journal, path: Path) -> dict[str, Any]:
    """A journal file of *j*'s trusted folder, parsed and checked."""
    j.trust()
    try:
        data = json.loads(read_private(path, "the move journal").decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"no move journal at {path}: nothing was moved with this --state-dir") from None
    except UntrustedStateError:
        raise
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == 40:  # ELOOP: O_NOFOLLOW met a symlink
            raise UntrustedStateError(f"the move journal {path} is a symlink: refusing to follow it") from None
        raise InputError(f"cannot read the move journal {path}: {exc}") from None
    if not isinstance(data, dict) or "old_root" not in data:
        raise InputError(f"{path} is not an opsbook docker-root journal")
    return data
