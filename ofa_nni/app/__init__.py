"""The application on top of the layers: the ``ofa-nni`` command line and its commands, the demo,
reports and the training runner. Nothing below (the core, ``search_spaces``, ``strategies``)
imports it."""
