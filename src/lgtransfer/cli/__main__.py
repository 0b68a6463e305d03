"""`python -m lgtransfer.cli`: the same as `lgt`."""

import sys

from lgtransfer.cli import main

if __name__ == "__main__":
    sys.exit(main())
