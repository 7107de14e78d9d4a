"""The ``gpupolicy`` command line. Subcommands import their heavy modules lazily."""
