"""opsbook runbooks: the logic behind every command, free of any CLI concerns.

Modules here return plain result objects (:mod:`runbooks.model`); they never print and
never import Typer. Heavy third-party libraries are imported lazily inside functions.
"""

from opsbook import __version__

__all__ = ["__version__"]
