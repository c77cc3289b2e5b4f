"""Built-in channel connectors, each registered through the omnicanal.connectors entry point."""
