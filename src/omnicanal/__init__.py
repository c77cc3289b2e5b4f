"""omnicanal: customer journeys written in YAML, run on Redis, sent on every channel."""

__version__ = "0.1.0"
