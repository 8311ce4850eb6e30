"""logship: a log-forwarding sidecar agent that never loses a line."""

__version__ = "0.1.0"
