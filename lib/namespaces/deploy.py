"""Deploys: the deploy bug, the signed tag, and watching production until it serves the tag."""

from __future__ import annotations

import json

from invoke import task

from lib.console import info
from lib.settings import resolve_path, setting


def _open_repo(c, repo):
    from lib.gitrepo import open_repo

    return open_repo(resolve_path(repo if repo is not None else setting(c, "deploy.repo")))


@task(
    auto_shortflags=False,
    help={
        "repo": "Service checkout (default: config deploy.repo, else the current directory).",
        "since": "Previous deploy tag to list changes from (default: the highest deploy tag).",
        "head": "Commit to deploy instead of the main branch's tip.",
        "offline": "Do not fetch the remote (and do not compare main with the remote's main).",
        "json": "Print the whole plan as JSON on stdout (nothing else on stdout).",
        "file_bug": "File the deploy bug in Bugzilla (reused if one with the same summary exists).",
        "priority": "Priority of the filed bug: P1 or P2 (default P2).",
        "assignee": "Assignee email of the filed bug (default: the API key's own user).",
        "needinfo": "Ask the referenced bugs' assignees to check on stage (implies --file-bug).",
    },
)
def prepare(
    c,
    repo=None,
    since=None,
    head=None,
    offline=False,
    json_=False,
    file_bug=False,
    priority="P2",
    assignee=None,
    needinfo=False,
):
    """Render the deploy bug from the history since the last deploy tag; --file-bug files it."""
    from lib import deploy, deploy_bug

    deploy_bug.check_priority(priority)
    git = _open_repo(c, repo)
    deploy.preflight(
        git,
        remote=str(setting(c, "deploy.remote")),
        main_branch=str(setting(c, "deploy.main_branch")),
        offline=offline,
    )
    plan = deploy.build_plan(c, git, since=since, head=head)
    if plan.nothing_to_deploy:
        info(f"nothing to deploy: {plan.head[:7]} has no new commits since {plan.previous_tag}")
        if json_:
            print(json.dumps(plan.to_json(), ensure_ascii=False))
        return

    client = None
    if file_bug or needinfo:
        client = deploy_bug.connect(c)
        if client is None:
            info("no Bugzilla API key (BUGZILLA_API_KEY or bugzillarc), so nothing is filed")
    if client is not None:
        bug_id, filed = deploy_bug.file_or_reuse(
            c, client, plan, priority=priority, assignee=assignee
        )
        plan.extra.update(bug_id=bug_id, bug_url=client.bug_url(bug_id), bug_filed_now=filed)
        if needinfo:
            asked = deploy_bug.request_verification(
                c, client, plan, bug_id, deployer=assignee or deploy_bug.deployer(c, client)
            )
            plan.extra["needinfo"] = asked
    else:
        plan.extra["enter_bug_url"] = deploy_bug.enter_bug_link(c, plan, priority)

    if json_:
        print(json.dumps(plan.to_json(), ensure_ascii=False))
        return
    print(f"summary:\n{plan.summary}\n\ndescription:\n\n{plan.description}")
    if client is not None:
        verb = "filed" if plan.extra["bug_filed_now"] else "reused"
        print(f"deploy bug ({verb}): {plan.extra['bug_url']}")
        if plan.extra.get("needinfo"):
            print(f"needinfo requested from: {', '.join(plan.extra['needinfo'])}")
    else:
        print(f"file it here (prefilled): {plan.extra['enter_bug_url']}")
