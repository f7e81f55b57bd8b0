"""`python -m fastpenalty.profile` — the same command as `python -m fastpenalty profile`."""

import sys

from .cli import main

sys.exit(main())
