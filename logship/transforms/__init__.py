"""Per-source transforms and enrichment, applied to whole batches between the tailer and the sinks.

Each module is one kind of step (``filter``, ``fields``, ``redact``, ``sample``, ``ratelimit``,
``enrich``); ``pipeline`` builds a source's ordered chain from its config. Every step takes a
:class:`~logship.parsing.batch.Batch` and returns one: lines are dropped by building a batch of
the kept lines whose ``end_offset`` is unchanged (the ticket still covers the dropped lines, so the
checkpoint passes them once the rest is delivered), and text is changed in the line bytes, so
that what the Loki sink sends and the records derived afterwards both carry the change.
"""
