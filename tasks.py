"""Release engineering tasks for the Crash Stats (Socorro) service.

This file only assembles the namespaces; each one lives in lib/namespaces/.
Run `invoke --list` to see every task, `invoke --help TASK` for its options.
"""

from invoke import Collection

from lib.namespaces import crashes, db, deploy, deps, pii

ns = Collection()
for module in (deploy, crashes, db, deps, pii):
    ns.add_collection(Collection.from_module(module))
