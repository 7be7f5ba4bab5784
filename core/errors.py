"""The one exception type for problems the user can fix, and the cancel signal.

Anything else escaping `core` is a bug. The CLI maps UserError to exit status 2, the worker to a structured
error frame; both show `str(error)` as is, so messages are written to be read in a dialog.
"""


class UserError(Exception):
    """Bad input, a wrong parameter, a missing model: one clear sentence naming the problem."""

    def __init__(self, message: str, code: str = "bad-input"):
        super().__init__(message)
        self.code = code


class Cancelled(Exception):
    """The user (or the host) asked to stop; raised at the next progress checkpoint."""
