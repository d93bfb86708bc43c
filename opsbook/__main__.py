"""``python -m opsbook``: the ``opsbook`` command."""

import sys

from opsbook.cli.app import main

sys.exit(main())
