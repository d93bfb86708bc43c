"""Exceptions the CLI turns into one clean line and an exit code."""

from __future__ import annotations


class OpsbookError(Exception):
    """Base class for errors with a message meant for the user."""

    exit_code = 3


class InputError(OpsbookError):
    """Bad input: unreadable or malformed file, invalid value. Exit 3, nothing changed."""


class RefusedError(OpsbookError):
    """A request refused as unsafe (or not confirmed). Exit 3, nothing changed."""
