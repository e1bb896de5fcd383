"""``python -m gan_fast.self_test``: the ``gan-fast-self-test`` command."""

import sys

from .cli import main

sys.exit(main())
