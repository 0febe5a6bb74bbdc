"""``python -m smsflow.cli …``: the same as the ``smsflow`` console script."""

import sys

from smsflow.cli import main

sys.exit(main())
