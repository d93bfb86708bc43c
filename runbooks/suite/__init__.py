"""YAML check suites (``opsbook run``): safe loading, validation, references, running.

The Click binding (which options each check command takes) lives in the CLI layer
(:mod:`opsbook.cli.suite_binding`); this package never imports Typer.
"""

from __future__ import annotations

from ..secrets import Scrubber
from .loader import load_suite
from .model import RUNBOOKS, Entry, Setting, Suite, When
from .refs import Resolver, reveal
from .runner import Job, SuiteOutcome, run_jobs
from .yamlsafe import Mark, SuiteError, SuiteErrors, YNode

__all__ = [
    "RUNBOOKS",
    "Entry",
    "Job",
    "Mark",
    "Resolver",
    "Scrubber",
    "Setting",
    "Suite",
    "SuiteError",
    "SuiteErrors",
    "SuiteOutcome",
    "When",
    "YNode",
    "load_suite",
    "reveal",
    "run_jobs",
]
