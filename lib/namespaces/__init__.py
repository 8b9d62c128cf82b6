"""One module per Invoke namespace; the task bodies stay thin and call into lib/."""
