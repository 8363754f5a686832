"""`python -m pewproc`: the `pewproc` command."""

from pewproc.ops.cli import main

main(prog_name="pewproc")
