"""Sensors of the provider: waits with a deadline, in reschedule mode (no worker slot held between looks)."""
