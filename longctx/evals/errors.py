"""The one exception type the runner raises for mistakes a user can make."""


class EvalError(ValueError):
    """A user-caused error in running, scoring or reporting; the CLI prints it and exits 2."""
