"""User-facing errors: printed as one line (what is wrong and how to fix it), never as a traceback."""


class UserError(Exception):
    """A mistake in the user's input or environment, with the fix in the message."""
