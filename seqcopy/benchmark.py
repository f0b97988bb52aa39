"""Placeholder until the benchmark lands (replaced on merge)."""


def add_arguments(parser):
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    print("benchmark not available yet")
    return 0
