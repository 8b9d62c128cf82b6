"""The logic behind the release engineering tasks: plain functions and small classes.

Modules here must stay cheap to import (no GitPython, requests, bugzilla or rich at
module level) so that `invoke --list` stays fast; import heavy libraries inside functions.
"""
