"""The one exception type model code raises for mistakes a user can make (bad spec, missing path, dead server)."""


class ModelError(ValueError):
    """A user-caused model error; the CLI prints the message and exits 2."""
