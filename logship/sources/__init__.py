"""Sources: discovery (which files), tailers (reading them), identity and checkpoints."""
