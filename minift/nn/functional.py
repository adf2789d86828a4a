"""``minift.nn.functional`` is ``minift.functional`` (PyTorch's spelling: ``import minift.nn.functional as F``)."""

from ..functional import *  # noqa: F401,F403
from ..functional import __all__  # noqa: F401
