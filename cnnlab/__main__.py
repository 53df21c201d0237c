"""`python -m cnnlab`: the same command line as `cnnlab` (torchrun starts workers this way)."""

import sys

from cnnlab.cli import main

sys.exit(main())
