"""One module per Invoke namespace; the task bodies stay thin and call into lib/."""

import sys

from lib.console import guard_stdout
from lib.redaction import install_log_redaction

# Invoke turns bytecode caching off for the whole run (its --write-pyc flag), so that a tasks
# file leaves no .pyc beside it. lib/ is this tool's package: let Python cache its modules in
# lib/__pycache__ (ignored by git), as for any installed package, unless the user said not to
# (PYTHONDONTWRITEBYTECODE or `python -B`: sys.flags). Compiling them costs about 20 ms a run.
if not sys.flags.dont_write_bytecode:
    sys.dont_write_bytecode = False

# Imported (by tasks.py) before Invoke loads the environment and the config files, whose
# contents it logs under --debug: mask the secrets in those lines from here on.
install_log_redaction()

guard_stdout()
