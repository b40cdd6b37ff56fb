"""The ``kubejit`` command: thin Typer commands over the broker's API and the library."""
