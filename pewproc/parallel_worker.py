"""`python -m pewproc.parallel_worker`: the worker, configured from the environment.

The module name operators already run; the same as `pewproc worker`, which takes the same
options.
"""

from __future__ import annotations

import sys

from pewproc.ops.cli import main as cli


def main() -> None:
    cli(["worker", *sys.argv[1:]], prog_name="python -m pewproc.parallel_worker")


if __name__ == "__main__":
    main()
