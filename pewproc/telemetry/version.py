"""The version of the extraction logic, stored with every match it writes.

Bump it in the same commit as any change after which the same telemetry file gives different
rows or a different match summary (docs/schema.md, "Extractor version"); `pewproc reprocess
--stale` then finds every match an older extraction wrote.
"""

EXTRACTOR_VERSION = "2"
