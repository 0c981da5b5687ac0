"""The ``recfuse`` sub-commands, one module each (see :mod:`recfuse.cli`)."""
