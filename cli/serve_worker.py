"""``python -m opsbook.cli.serve_worker --threads N``: a probe worker process of ``opsbook serve``.

Not a command for people: ``opsbook serve --probe-processes N`` starts these and talks to
them over their stdin and stdout (see :mod:`opsbook.runbooks.exporter.workers`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """Run one probe worker until the server closes its stdin."""
    parser = argparse.ArgumentParser(prog="opsbook-serve-worker", description=__doc__)
    parser.add_argument("--threads", type=int, required=True, help="probe threads of this worker")
    args = parser.parse_args(argv)
    # The server handles Ctrl-C and reloads, and stops the workers itself: a signal sent to the
    # whole process group (a terminal's Ctrl-C or hang-up) must not kill them halfway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from opsbook.runbooks.exporter.workers import worker_main

    from .commands.serve import ExporterHooks

    worker_main(ExporterHooks(), args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
