"""``python -m minift``: the same as the ``minift`` command (see ``minift.apps.cli``)."""

import sys

from .apps.cli import main

sys.exit(main())
