"""Terminal helpers: messages on stderr, confirmations, positional-argument checks."""

from __future__ import annotations

import sys

from lib.errors import UserError


def info(message: str) -> None:
    """Print a progress or status line on stderr (stdout is kept for data)."""
    print(message, file=sys.stderr, flush=True)


def write_bytes(data: bytes) -> None:
    """Write encoded data (e.g. JSON from orjson) to stdout, after any text already printed,
    without decoding and re-encoding it."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (e.g. replaced by a caller): write it as text
        sys.stdout.write(data.decode())
    else:
        # Unbuffered (python -u, PYTHONUNBUFFERED) this is the raw file, whose write may take
        # only part of the data (as much as a pipe has room for): write until all is out.
        import select

        view = memoryview(data)
        while view:
            try:
                written = buffer.write(view)
            except BrokenPipeError:
                raise
            except OSError as error:
                raise OutputError(error.errno, error.strerror) from None
            if not written:  # a non-blocking stdout that is full: wait for room
                select.select([], [buffer], [], 1.0)
            view = view[written or 0 :]
    sys.stdout.flush()


class OutputError(OSError):
    """Standard output cannot be written: a full disk (`> /dev/full`), a closed descriptor
    (`>&-`), an I/O error. Reported in one line by the hook of `guard_stdout`."""


class _GuardedStdout:
    """sys.stdout, whose failures to write become OutputError (a closed stdout, which Python
    leaves as None and print() then ignores, too). A broken pipe stays a BrokenPipeError."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def _call(self, name: str, *args: object) -> object:
        if self._stream is None:
            import errno

            raise OutputError(errno.EBADF, "it is closed")
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(error.errno, error.strerror) from None

    def write(self, text: str) -> object:
        return self._call("write", text)

    def flush(self) -> object:
        return None if self._stream is None else self._call("flush")  # (nothing was written)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _stdout_reader_is_gone() -> bool:
    """Whether stdout is a pipe whose reading end was closed (`invoke ... | head`)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no stdout descriptor at all
        pass


def _output_failed(error: OutputError) -> None:
    print(f"error: could not write to standard output: {error.strerror}", file=sys.stderr)
    _silence_stdout()


def guard_stdout() -> None:
    """Make writing the output safe to fail, as other command-line tools do:

    * when the reader of stdout goes away (`invoke deploy.prepare --json | head -c 100`), end
      with exit status 1 and no traceback; any other broken pipe (a network peer, a child
      process) still shows as the error it is;
    * when stdout cannot be written (a full disk, a closed descriptor), say so in one line and
      end with exit status 1, also when that shows only in the interpreter's last flush.
    """
    import atexit

    if not isinstance(sys.stdout, _GuardedStdout):
        sys.stdout = _GuardedStdout(sys.stdout)  # type: ignore[assignment]
    previous_hook = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, traceback: object) -> None:
        if issubclass(kind, BrokenPipeError) and _stdout_reader_is_gone():
            _silence_stdout()
            return
        if isinstance(value, OutputError):
            _output_failed(value)
            return
        previous_hook(kind, value, traceback)  # type: ignore[arg-type]

    def last_flush() -> None:
        import os

        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            sys.stderr.flush()
            os._exit(1)
        except OutputError as error:
            _output_failed(error)
            sys.stderr.flush()
            os._exit(1)

    sys.excepthook = hook
    atexit.register(last_flush)


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def confirm(question: str, assume_yes: bool) -> None:
    """Ask a yes/no question; `assume_yes` skips it. Without a terminal, --yes is required."""
    if assume_yes:
        return
    if not stdin_is_terminal():
        raise UserError("stdin is not a terminal, so nothing can be confirmed; rerun with --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UserError("aborted; nothing was changed by this step")


def positional(value: str | None, name: str) -> str:
    """Reject a positional value that is really a flag (Invoke hands `--help` to the positional)."""
    if value is None or value == "":
        raise UserError(f"{name} is required")
    if str(value).startswith("-"):
        raise UserError(
            f"{name} must not start with '-' (got {value!r}); put Invoke's own flags before the "
            f"task name, e.g. `invoke --help TASK` or `invoke --dry TASK ...`"
        )
    return str(value)


def refuse_core_short_flags(task_name: str, flags: dict[str, str]) -> None:
    """A one-line error for a short flag after the task that Invoke takes as its own.

    Our tasks have long flags only, and Invoke reads a short flag it knows after the task name
    as a core flag: `deps.check -r dev.txt` would silently set Invoke's --search-root and
    check requirements.txt instead. `flags` maps such a short flag to the long flag meant.
    """
    if task_name not in sys.argv:
        return
    for token in sys.argv[sys.argv.index(task_name) + 1 :]:
        for short, meant in flags.items():
            if token == short or (token.startswith(short) and not token.startswith("--")):
                raise UserError(
                    f"{task_name} has no {short} flag (Invoke would take it as its own); "
                    f"use {meant}",
                    code=2,
                )
