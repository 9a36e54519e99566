"""The one exception type task code raises for mistakes a user can make (bad ctx, unknown task, bad file)."""


class TaskError(ValueError):
    """A user-caused error in task generation; the CLI prints the message and exits 2."""
