"""The typed project model and where the platform keeps its state: the one source of defaults and bounds."""
