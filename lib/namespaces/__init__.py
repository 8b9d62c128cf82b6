"""One module per Invoke namespace; the task bodies stay thin and call into lib/."""

from lib.redaction import install_log_redaction

# Imported (by tasks.py) before Invoke loads the environment and the config files, whose
# contents it logs under --debug: mask the secrets in those lines from here on.
install_log_redaction()
