"""The ``raftkv`` command."""
