"""``python -m cina`` is the ``cina`` command (also for ``torchrun -m cina pretrain ...``)."""

import sys

from .cli import main

sys.exit(main())
