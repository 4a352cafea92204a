"""``python -m bulkflow``: the same as the ``bulkflow`` command."""

import sys

from bulkflow._cli import main

sys.exit(main())
