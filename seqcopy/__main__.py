import sys

from seqcopy.cli.commands import main

sys.exit(main())
