"""The one exception type for user-facing failures."""

from invoke.exceptions import Exit


class UserError(Exit):
    """A failure the user can act on: Invoke prints the one-line message and exits with `code`.

    Raised anywhere in lib/; because it is an Invoke `Exit`, no task has to catch it.
    The message must be one line and must never contain a secret.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        message = _one_line(message)
        super().__init__(message=f"error: {message}", code=code)
        self.reason = message

    def __str__(self) -> str:
        return self.reason


def _one_line(text: str) -> str:
    """`text` with control characters (a newline in a file name, say) written as escapes, so
    that the message stays on one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
