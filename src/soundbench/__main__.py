import sys

from soundbench.cli import main

sys.exit(main())
