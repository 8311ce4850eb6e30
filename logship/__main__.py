"""The ``logship`` command (``python -m logship`` and the console script).

Garbage collection is off until start-up is over: the imports and the config allocate ~60,000
objects that live as long as the process, and the collector, run every few hundred allocations,
walked them again and again (~0.04 G instructions per start, ~4 % of an empty run). The CLI
freezes them and turns it back on before the agent runs (``logship.cli._started``).

pydantic looks for plugins (validation observers such as logfire) in every installed
distribution's entry points before it builds the first validator (~0.01 G); logship validates
only its config, so it asks for none unless ``PYDANTIC_DISABLE_PLUGINS`` is set already (set it
empty to have pydantic load them).
"""

import gc
import os

gc.disable()
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from logship.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
