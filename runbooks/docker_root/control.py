"""Stopping and starting the engine: systemd units, or the user's own commands."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from . import engine
from .validate import error_line
from .validate import has_reason as _has_reason

COMMAND_TIMEOUT = 300.0
WAIT_TIMEOUT = 90.0
DROPIN_NAME = "opsbook-data-root.conf"


class ControlError(Exception):
    """The engine could not be stopped or started."""


@dataclass
class EngineControl:
    """How to stop and start the engine.

    With ``systemd`` true: ``systemctl stop docker.socket``, ``systemctl stop docker.service``
    and ``systemctl start docker.socket docker.service`` (plus ``daemon-reload`` when a
    drop-in was written). Otherwise the shell commands given by the user.
    """

    docker_host: str | None
    stop_command: str | None = None
    start_command: str | None = None
    systemd: bool = False
    unit_dir: str = "/etc/systemd/system"
    #: Whether docker.socket exists (socket activation); without it only docker.service is handled.
    socket_unit: bool = True
    wait_timeout: float = WAIT_TIMEOUT
    log: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether both stop and start are known."""
        return bool(self.stop_command and self.start_command) or (
            self.systemd and not self.stop_command and not self.start_command
        )

    def stop_commands(self) -> list[list[str]]:
        """The commands that stop the engine, in order."""
        if self.stop_command:
            return [["sh", "-c", self.stop_command]]
        # docker.socket first: stopped second, it could start docker.service again on the next API call.
        socket = [["systemctl", "stop", "docker.socket"]] if self.socket_unit else []
        return [*socket, ["systemctl", "stop", "docker.service"]]

    def start_commands(self, reload: bool = False) -> list[list[str]]:
        """The commands that start the engine, in order."""
        if self.start_command:
            return [["sh", "-c", self.start_command]]
        cmds = [["systemctl", "daemon-reload"]] if reload else []
        units = ["docker.socket", "docker.service"] if self.socket_unit else ["docker.service"]
        return [*cmds, ["systemctl", "start", *units]]

    def dropin_path(self) -> str:
        """The drop-in opsbook writes for ``RequiresMountsFor=``."""
        return os.path.join(self.unit_dir, "docker.service.d", DROPIN_NAME)

    @staticmethod
    def dropin_text(target: str) -> str:
        """Contents of the drop-in making docker.service wait for TARGET's mount."""
        return (
            "# Written by opsbook docker-root move: start Docker only once its data-root is mounted.\n"
            f"[Unit]\nRequiresMountsFor={target}\n"
        )

    @staticmethod
    def show(cmds: list[list[str]]) -> list[str]:
        """Commands as shell lines."""
        return [c[2] if c[:2] == ["sh", "-c"] else shlex.join(c) for c in cmds]

    def _run(self, cmds: list[list[str]]) -> None:
        for cmd in cmds:
            # Output goes to a file, not a pipe: a start command that leaves dockerd
            # running in the background must not keep us waiting for EOF.
            with tempfile.TemporaryFile() as output:
                try:
                    proc = subprocess.run(
                        cmd,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        timeout=COMMAND_TIMEOUT,
                        check=False,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise ControlError(f"{self.show([cmd])[0]}: {exc}") from None
                output.seek(0)
                text = output.read().decode(errors="replace").strip()
            self.log.append(f"$ {self.show([cmd])[0]} -> {proc.returncode}")
            if proc.returncode != 0:
                # dockerd's own reason in full when the output has it, else the last lines.
                reason = error_line(text) if _has_reason(text) else " ".join(text.splitlines()[-3:])[-2000:]
                raise ControlError(f"{self.show([cmd])[0]} exited with {proc.returncode}: {reason}")

    #: What is stopped and started, in messages.
    name = "the engine"

    def answers(self) -> bool:
        """Whether the engine answers on its API."""
        return engine.ping(self.docker_host, timeout=2)

    def where(self) -> str:
        """Where it is expected to answer, for the start message ('' when it goes without saying)."""
        return ""

    def stop(self) -> float:
        """Stop it and wait until it no longer answers; returns the seconds taken."""
        started = time.monotonic()
        self._run(self.stop_commands())
        while self.answers():
            if time.monotonic() - started > self.wait_timeout:
                raise ControlError(f"{self.name} still answers {self.wait_timeout:g}s after the stop command")
            time.sleep(0.2)
        return time.monotonic() - started

    def start(self, reload: bool = False) -> float:
        """Start it and wait until it answers; returns the seconds taken."""
        started = time.monotonic()
        self._run(self.start_commands(reload))
        while not self.answers():
            if time.monotonic() - started > self.wait_timeout:
                raise ControlError(
                    f"{self.name} does not answer{self.where()} {self.wait_timeout:g}s after the start command"
                )
            time.sleep(0.2)
        return time.monotonic() - started
