"""`python -m pewproc.parallel_worker`: the worker, configured from the environment.

The module name operators already run; the same command as `pewproc worker`, with the same
options, run directly so that its usage line names this module.
"""

from __future__ import annotations

from pewproc.ops.cli import worker


def main() -> None:
    worker.main(prog_name="python -m pewproc.parallel_worker")


if __name__ == "__main__":
    main()
