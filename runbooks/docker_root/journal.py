"""The move journal: one JSON file in the state dir, rewritten atomically after every step.

A crash at any step leaves a journal that says how far the move went, so ``rollback``
(or a new ``move``) can bring the host back to a known state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbooks.errors import InputError, RefusedError
from runbooks.fsutil import atomic_write

IN_PROGRESS = "in-progress"
VERIFIED = "verified"
ROLLED_BACK = "rolled-back"
FAILED = "failed"
CLEANED = "cleaned"


class Journal:
    """The journal of the last move under ``STATE_DIR/docker-root/``."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(state_dir) / "docker-root"
        self.path = self.folder / "journal.json"
        self.data: dict[str, Any] = {}

    def exists(self) -> bool:
        """Whether a journal was written before."""
        return self.path.is_file()

    def load(self) -> Journal:
        """Read the journal (InputError when it is unreadable)."""
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"no move journal at {self.path}: nothing was moved with this --state-dir") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the move journal {self.path}: {exc}") from None
        if not isinstance(self.data, dict) or "old_root" not in self.data:
            raise InputError(f"{self.path} is not an opsbook docker-root journal")
        return self

    def make_folder(self) -> None:
        """Create the state folder (mode 0700: it holds daemon.json backups)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state dir's lock: one move/rollback/cleanup at a time (released if we die)."""
        self.make_folder()
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
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

    def backup_path(self) -> Path:
        """Where this move keeps the previous daemon.json."""
        return self.folder / f"daemon.json.{self.data['id']}.bak"
