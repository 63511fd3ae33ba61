"""The ``isonet2`` command line: one thin module per subcommand (see ``main.SUBCOMMANDS``)."""
