"""``python -m worker`` is the same as the ``ven-worker`` command."""

import sys

from worker.cli import main

if __name__ == "__main__":
    sys.exit(main())
