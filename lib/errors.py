"""The one exception type for user-facing failures."""

from invoke.exceptions import Exit


class UserError(Exit):
    """A failure the user can act on: Invoke prints the one-line message and exits with `code`.

    Raised anywhere in lib/; because it is an Invoke `Exit`, no task has to catch it.
    The message must be one line and must never contain a secret.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message=f"error: {message}", code=code)
        self.reason = message

    def __str__(self) -> str:
        return self.reason
