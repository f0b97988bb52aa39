"""Training-step benchmark of the five cells: a thin wrapper around seqcopy.core.benchmark."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqcopy.core import benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    benchmark.add_arguments(parser)
    sys.exit(benchmark.run(parser.parse_args()))
