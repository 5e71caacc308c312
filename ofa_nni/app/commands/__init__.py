"""Subcommands of the ``ofa-nni`` command line (one module each, see :mod:`ofa_nni.app.cli`)."""
