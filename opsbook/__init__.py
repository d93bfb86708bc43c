"""opsbook: sysadmin runbooks as safe, scriptable commands.

One top-level package: :mod:`opsbook.cli` (the command line, ``cli/`` in the repository)
and :mod:`opsbook.runbooks` (the logic, ``runbooks/``). ``__version__`` is the one place the
version is written (the build reads it from here).
"""

__version__ = "0.1.0"
