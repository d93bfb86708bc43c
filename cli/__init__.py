"""opsbook command-line interface: parse options, call runbooks, render, exit."""
