"""Deploys: the deploy bug, the signed tag, and watching production until it serves the tag."""

from __future__ import annotations

import json

from invoke import task

from lib.console import info, write_bytes
from lib.settings import resolve_path, setting, text_setting


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
    import gc

    from lib import deploy, deploy_bug

    # What is loaded by now (Invoke, the config, these modules) lives until the end: keep the
    # garbage collector from scanning it again each time the plan's many objects trigger a
    # collection (on 10,000 commits that scanning was a third of the task's own time).
    gc.freeze()
    priority = deploy_bug.check_priority(priority)
    git = _open_repo(c, repo)
    if file_bug or needinfo:
        deploy.refuse_own_checkout(git)
    remote = text_setting(c, "deploy.remote")
    deploy.preflight(
        git, remote=remote, main_branch=text_setting(c, "deploy.main_branch"), offline=offline
    )
    remote_tags = None if offline else git.remote_tags(remote)
    plan = deploy.build_plan(
        c, git, since=since, head=head, remote_tags=remote_tags, filing=file_bug or needinfo
    )
    if plan.nothing_to_deploy:
        info(f"nothing to deploy: {plan.head[:7]} has no new commits since {plan.previous_tag}")
        if json_:
            write_bytes(plan.json_bytes() + b"\n")
        return
    shown = []

    def show_text() -> None:
        if not json_ and not shown:
            print(f"summary:\n{plan.summary}\n\ndescription:\n\n{plan.description}", flush=True)
            shown.append(True)

    # With a Bugzilla to talk to, the text is shown before the first request, so that it is
    # there to file by hand if Bugzilla fails.
    deploy_bug.publish(
        c,
        plan,
        file_bug=file_bug,
        needinfo=needinfo,
        priority=priority,
        assignee=assignee,
        before_requests=show_text,
    )
    if json_:
        if plan.extra.get("enter_bug_url_omits_description"):
            info(f"note: {deploy_bug.LINK_OMITS_DESCRIPTION}: paste the plan's description")
        write_bytes(plan.json_bytes() + b"\n")
    else:
        show_text()
        print("\n".join(deploy_bug.outcome_lines(plan)))


# -- deploy.tag / deploy.status / deploy.watch / deploy.finish ------------------------------------
# (after prepare; the logic lives in lib/deploy_steps.py, lib/tagging.py, lib/signing.py and
# lib/dockerflow.py)


@task(
    name="tag",
    auto_shortflags=False,
    help={
        "nnn": "The deploy tag to make, e.g. `deploy.tag 101`: the next tag, or the one to resume.",
        "repo": "Service checkout (default: config deploy.repo, else the current directory).",
        "bug": "Deploy bug number (default: the open bug titled with this tag's deploy summary).",
        "head": "Commit to tag instead of the main branch's tip (as in deploy.prepare).",
        "yes": "Do not ask for confirmation (required when stdin is not a terminal).",
        "dry_run": "Print every git command and HTTP request of a real run; change nothing.",
    },
)
def tag_(c, nnn, repo=None, bug=None, head=None, yes=False, dry_run=False):
    """Make the signed deploy tag, push only it, post `git show` on the deploy bug; resumable."""
    from lib import deploy_steps
    from lib.deploy import refuse_own_checkout
    from lib.settings import is_dry

    dry = is_dry(c, dry_run)
    name = deploy_steps.checked_tag_name(c, nnn)
    git = deploy_steps.open_service_repo(c, repo, echo=dry)
    refuse_own_checkout(git)
    with deploy_steps.repository_lock(git, "deploy.tag"):  # (a dry run too: same commands)
        _tag_steps(c, deploy_steps, git, name, bug=bug, head=head, yes=yes, dry=dry)


def _tag_steps(c, deploy_steps, git, name, *, bug, head, yes, dry):
    """deploy.tag's steps, under the repository lock: plan, confirm, do what is left."""
    from lib.console import confirm

    client = deploy_steps.bugzilla_client(c, dry=dry, need_key=False)
    plan = deploy_steps.plan_tag(c, git, name, bug_id=bug, head=head, client=client, dry=dry)
    for line in deploy_steps.describe_plan(plan):
        info(line)
    if plan.all_done:
        print(f"deploy tag {name} is complete: signed, pushed, and posted on {plan.bug_url}")
        print(f"next: invoke deploy.watch {name}")
        return
    deploy_steps.require_api_key_for_comment(c, plan, dry=dry)
    if not dry:
        confirm(f"Tag, push and post {name} as listed above?", assume_yes=yes)
    deploy_steps.run_tag(git, plan, client, dry=dry)
    if dry:
        print(f"dry-run: nothing was changed; rerun without --dry-run to deploy-tag {name}")
        return
    print(f"next: invoke deploy.watch {name}   (then: invoke deploy.finish {name})")


@task(
    name="status",
    auto_shortflags=False,
    help={
        "nnn": "The deploy tag to report on, e.g. `deploy.status 101`.",
        "repo": "Service checkout (default: config deploy.repo, else the current directory).",
        "bug": "Deploy bug number (default: the bug whose summary is this tag's deploy summary).",
        "json": "Print the report as JSON on stdout (nothing else on stdout).",
    },
)
def status_(c, nnn, repo=None, bug=None, json_=False):
    """Show each step of a deploy (bug, tag, push, comment, stage, prod, FIXED), live."""
    from lib import deploy_steps
    from lib.settings import is_dry

    name = deploy_steps.checked_tag_name(c, nnn)
    dry = is_dry(c)
    git = deploy_steps.open_service_repo(c, repo, echo=dry)
    report = deploy_steps.deploy_status(c, git, name, bug_id=bug, echo=dry)
    if json_:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        deploy_steps.print_status_table(report)


@task(
    name="watch",
    auto_shortflags=False,
    help={
        "nnn": "The deploy tag to wait for, e.g. `deploy.watch 101`.",
        "env": "Environment to watch: prod (config deploy.prod_url) or stage (deploy.stage_url).",
        "timeout": "Give up after this many seconds (default: config deploy.watch_timeout).",
        "interval": "Seconds between polls (default: config deploy.watch_interval).",
        "repo": "Service checkout (default: config deploy.repo, else the current directory).",
    },
)
def watch_(c, nnn, env="prod", timeout=None, interval=None, repo=None):
    """Poll /__version__ until the environment serves the tag's commit; reports /__heartbeat__."""
    from lib import deploy_steps
    from lib.settings import is_dry

    name = deploy_steps.checked_tag_name(c, nnn)
    dry = is_dry(c)  # (watch changes nothing; under --dry it prints its git commands and GETs)
    git = deploy_steps.open_service_repo(c, repo, echo=dry)
    from lib.errors import UserError

    try:
        message = deploy_steps.watch(
            c, git, name, env=env, timeout=timeout, interval=interval, echo=dry
        )
    except KeyboardInterrupt:
        raise UserError(
            f"deploy.watch {name} was interrupted; nothing was changed, rerun it to watch again",
            code=130,
        ) from None
    print(message)


@task(
    name="finish",
    auto_shortflags=False,
    iterable=["note"],
    help={
        "nnn": "The deploy tag that went out, e.g. `deploy.finish 101`.",
        "note": "A line for the closing comment (repeatable).",
        "force": "Close even though prod does not serve the tag (says so in the comment).",
        "repo": "Service checkout (default: config deploy.repo, else the current directory).",
        "bug": "Deploy bug number (default: the bug whose summary is this tag's deploy summary).",
        "dry_run": "Print the Bugzilla requests a real run would make; change nothing.",
    },
)
def finish_(c, nnn, note=None, force=False, repo=None, bug=None, dry_run=False):
    """Once prod serves the tag: post the closing comment and mark the deploy bug RESOLVED FIXED."""
    from lib import deploy_steps
    from lib.deploy import refuse_own_checkout
    from lib.settings import is_dry

    dry = is_dry(c, dry_run)
    name = deploy_steps.checked_tag_name(c, nnn)
    git = deploy_steps.open_service_repo(c, repo, echo=dry)
    refuse_own_checkout(git)
    with deploy_steps.repository_lock(git, "deploy.finish"):
        print(
            deploy_steps.finish(
                c, git, name, notes=list(note or []), force=force, bug_id=bug, dry=dry
            )
        )
