"""One module per Invoke namespace; the task bodies stay thin and call into lib/."""

from lib.redaction import install_log_redaction

# Imported (by tasks.py) before Invoke loads the environment and the config files, whose
# contents it logs under --debug: mask the secrets in those lines from here on.
install_log_redaction()


def refuse_core_short_flags(task_name: str, flags: dict[str, str]) -> None:
    """A one-line error for a short flag after the task that Invoke takes as its own.

    Our tasks have long flags only, and Invoke reads a short flag it knows after the task name
    as a core flag: `deps.check -r dev.txt` would silently set Invoke's --search-root and
    check requirements.txt instead. `flags` maps such a short flag to the long flag meant.
    """
    import sys

    from lib.errors import UserError

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
