"""`pewproc bench`: the end-to-end benchmark, from a generated corpus to a table, a JSON, a chart.

Four kinds of figure, each measured on the same files in the same run:

- the floor: what reading a match cannot avoid, `gzip.decompress` + `orjson.loads`, in a fresh
  child per file, median of several warm runs, CPU (`time.process_time`) and wall;
- the child's cost per stage (read, decompress, parse, extract, write/commit), in a fresh child
  per file that runs `Processor.process` once (cold), then the same functions the Processor calls,
  timed one by one, then `Processor.process` again (warm);
- peak resident memory (`ru_maxrss`) of that child after its first match, against a child that
  only parses the same file;
- end-to-end throughput through the real broker and database: a real worker process per mode
  (`PROCESSING_MODE=sequential`, and each `WORKER_POOL_SIZE` asked for), a warm-up batch, then the
  corpus, timed from the first publish to the last settlement read off the worker's JSON log;
  and, through the same worker, the cost of one message when the match is tiny.

Everything it creates is its own: queues under `ENVIRONMENT=bench-<random>`, a schema of its own
(dropped at the end unless kept), a corpus under a temporary folder inside --out.

`bench` takes every setting as an option (`pewproc.ops.options`), like every command.
The package: `command` (the click command), `run` (the Bench that drives a run), `corpus` (the
files measured), `measurement` (children that time the floor, the stages and memory),
`endtoend` (a real worker through the broker and the database), `report` (figures, targets,
the table) and `plot` (bench.png).
"""

from pewproc.ops.bench.command import bench
from pewproc.ops.bench.report import STAGES, TARGETS

__all__ = ["STAGES", "TARGETS", "bench"]
