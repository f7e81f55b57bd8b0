"""The one error the profile command shows the user: one line, no traceback."""


class ProfileError(Exception):
    """A user-facing failure (bad path, unknown model, unreadable file); exit code in .code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
