"""``python -m jaxnn ...`` is the ``jaxnn`` command."""

import sys

from jaxnn.cli import main

sys.exit(main())
