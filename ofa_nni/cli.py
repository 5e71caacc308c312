"""``python -m ofa_nni.cli``: the ``ofa-nni`` command line (kept at this path for scripts that use it).

Part of the application layer (``ofa_nni.app``), like the commands it runs.
"""

import sys

from ofa_nni.app.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
