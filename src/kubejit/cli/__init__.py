"""The ``kubejit`` command: thin click commands over the broker's API and the library."""
