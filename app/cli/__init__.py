"""The ``earthvec`` command line: one module per command."""
