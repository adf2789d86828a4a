"""``python -m minift``: the same as the ``minift`` command (see ``minift.cli``)."""

import sys

from .cli import main

sys.exit(main())
