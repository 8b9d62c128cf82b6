"""The deploy after the bug: tag (signed, pushed, `git show` on the bug), status, finish.

Nothing here keeps a local state file. Each step looks at the real systems (the repository, the
remote, Bugzilla, the Dockerflow endpoints) to decide whether it is done, so any task can be rerun
after a failure at any point and does only what is left, never anything twice.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lib.console import info
from lib.errors import UserError
from lib.gitrepo import GitRepo
from lib.settings import setting, text_setting

# -- shared lookups --------------------------------------------------------------------------------


def bugzilla_client(c: Any, *, dry: bool, need_key: bool) -> Any:
    """A BugzillaClient for the configured server; without an API key only reads work."""
    from lib.bugzilla import api_key_from_environment, client_from_config

    url = text_setting(c, "bugzilla.url")
    api_key = api_key_from_environment(url)
    if need_key and not api_key and not dry:
        raise UserError(
            "no Bugzilla API key: set BUGZILLA_API_KEY (or python-bugzilla's bugzillarc) so the "
            "bug can be commented on"
        )
    return client_from_config(c, dry_run=dry, api_key=api_key)


def has_api_key(c: Any) -> bool:
    from lib.bugzilla import api_key_from_environment

    return bool(api_key_from_environment(text_setting(c, "bugzilla.url")))


def _status_text(bug: dict[str, Any]) -> str:
    status = str(bug.get("status", "?"))
    return f"{status} {bug['resolution']}" if bug.get("resolution") else status


def _is_open(bug: dict[str, Any]) -> bool:
    if "is_open" in bug:
        return bool(bug["is_open"])
    return str(bug.get("status")) not in ("RESOLVED", "VERIFIED", "CLOSED")


def find_deploy_bug(
    c: Any, client: Any, tag: str, bug_id: int | str | None, *, require_open: bool
) -> dict[str, Any] | None:
    """The deploy bug of `tag`: `bug_id` if given (its summary must match), else the bug of the
    configured product whose summary is exactly the tag's deploy summary. None when none exists
    and no id was given."""
    from lib.deploy import deploy_summary

    summary = deploy_summary(c, tag)
    if bug_id not in (None, ""):
        try:
            number = int(str(bug_id))
        except ValueError:
            raise UserError(f"--bug must be a bug number (got {bug_id!r})") from None
        bug = client.get_bug(number)
        if bug.get("summary") != summary:
            raise UserError(
                f"bug {number}'s summary is {bug.get('summary')!r}, not {summary!r}: it is not the "
                f"deploy bug of {tag}"
            )
    else:
        product = text_setting(c, "bugzilla.product")
        bugs = client.find_bugs(product, summary)
        if not bugs:
            return None
        open_bugs = [b for b in bugs if _is_open(b)]
        if len(open_bugs) > 1:
            ids = ", ".join(str(b["id"]) for b in open_bugs)
            raise UserError(
                f"several open bugs are titled {summary!r} ({ids}); pick one with --bug"
            )
        bug = open_bugs[0] if open_bugs else min(bugs, key=lambda b: int(b["id"]))
    if require_open and not _is_open(bug):
        raise UserError(
            f"deploy bug {bug['id']} ({summary!r}) is {_status_text(bug)}; reopen it or pass "
            f"--bug with the open deploy bug"
        )
    return bug


def open_service_repo(c: Any, repo: str | None, *, echo: bool = False) -> GitRepo:
    """The service checkout; with `echo` (dry runs) every git command is printed as it runs."""
    from lib.gitrepo import open_repo
    from lib.settings import resolve_path

    path = resolve_path(repo if repo not in (None, "") else setting(c, "deploy.repo"))
    return open_repo(path, echo=echo)


LOCK_FILE = "releng-deploy.lock"


@contextlib.contextmanager
def repository_lock(repo: GitRepo, task: str) -> Iterator[None]:
    """Hold an exclusive lock on the repository (a file in its git directory) while a deploy
    task changes things, so two deploy.tag/deploy.finish runs cannot do their steps at once
    (both would post the same comment). Refused at once, never waited for, when held."""
    import fcntl

    common = repo.read("rev-parse", "--git-common-dir").strip()  # (relative to the work tree)
    directory = os.path.join(repo.path, common)  # shared by every worktree of the repository
    path = os.path.join(os.path.normpath(directory), LOCK_FILE)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held across the yield)
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another deploy task"
            raise UserError(
                f"another deploy task is running on this repository ({holder}; lock {path}); "
                f"wait for it to end, then rerun {task}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{task}, process {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # (closing releases the lock)


def checked_tag_name(c: Any, value: str | None) -> str:
    """The positional NNN, refused when it is a flag or not a tag of the configured scheme."""
    from lib.console import positional
    from lib.deploytags import scheme_from_config

    tag = positional(value, "NNN (the deploy tag)")
    scheme = scheme_from_config(c)
    if not scheme.is_valid(tag):
        raise UserError(
            f"{tag!r} is not a deploy tag of the configured scheme ({scheme.describe()})"
        )
    return tag


def tag_commit(repo: GitRepo, remote: str | None, tag: str) -> str | None:
    """The commit the tag names: locally, else on the remote (peeled), else None."""
    commit = repo.rev_parse(f"refs/tags/{tag}")
    if commit or not remote:
        return commit
    out = repo.try_read("ls-remote", "--tags", remote, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
    peeled = plain = None
    for line in (out or "").splitlines():
        sha, _, ref = line.partition("\t")
        if ref.endswith("^{}"):
            peeled = sha
        else:
            plain = sha
    return peeled or plain


def contains_commit(repo: GitRepo) -> Callable[[str, str], bool]:
    """A `contains(commit, served)` test for dockerflow: is `served` a descendant of `commit`?"""

    def contains(commit: str, served: str) -> bool:
        if repo.try_read("cat-file", "-e", f"{served}^{{commit}}") is None:
            return False
        return repo.is_ancestor(commit, served)

    return contains


# -- deploy.tag ------------------------------------------------------------------------------------


@dataclass
class TagPlan:
    """What deploy.tag learned in its preflight, and which steps are left."""

    tag: str
    remote: str
    head: str
    previous: str | None
    commits: list[Any]
    bug: dict[str, Any]
    bug_url: str
    message: str
    local: Any = None  # tagging.LocalTag when the tag exists
    remote_object: str | None = None
    comment_done: bool = False
    from_remote: bool = False  # the tag was only on the remote before this run's fetch
    notes: list[str] = field(default_factory=list)

    @property
    def tag_done(self) -> bool:
        return self.local is not None

    @property
    def push_done(self) -> bool:
        return self.local is not None and self.remote_object == self.local.object_sha

    @property
    def all_done(self) -> bool:
        return self.tag_done and self.push_done and self.comment_done


def _repair_hint(tag: str, remote: str, pushed: bool) -> str:
    if pushed:
        return (
            f"it is already on {remote!r}, so fix it by hand: delete it there and here "
            f"(`git push {remote} :refs/tags/{tag}` and `git tag -d {tag}`) only if nobody "
            f"deploys it yet"
        )
    return f"it is not pushed yet: delete it (`git tag -d {tag}`) and rerun deploy.tag {tag}"


def _check_existing_tag(repo: GitRepo, plan: TagPlan, *, full: bool = True) -> None:
    """Refuse an existing tag that is not exactly the one this deploy would make (commit and
    kind only, before the deploy bug is known, unless `full`)."""
    from lib.tagging import verify_failure, verify_tag

    local, tag = plan.local, plan.tag
    pushed = plan.remote_object is not None
    if plan.from_remote:
        who = f"remote {plan.remote!r} has a different tag {tag} than this deploy would make:"
        hint = f"someone else tagged {tag}; " + _repair_hint(tag, plan.remote, True)
    else:
        who = f"tag {tag} already exists"
        hint = _repair_hint(tag, plan.remote, pushed)
    if local.commit_sha != plan.head:
        raise UserError(
            f"{who} on {local.commit_sha[:7]}, not on the head to deploy {plan.head[:7]}; pass "
            f"--head {local.commit_sha[:7]} to resume with it, or {hint}"
        )
    if not local.annotated or not local.signed:
        kind = "as a lightweight tag" if not local.annotated else "as an unsigned annotated tag"
        raise UserError(f"{who} {kind}; {hint}")
    if not full:
        return
    if local.message != plan.message:
        raise UserError(
            f"{who} with a different message (other changes or another deploy bug); {hint}"
        )
    if not verify_tag(repo, tag):
        raise UserError(
            f"{who} whose signature `git tag -v {tag}` rejects ({verify_failure(repo, tag)}); "
            f"import the signer's key, or {hint}"
        )


def plan_tag(
    c: Any, repo: GitRepo, tag: str, *, bug_id: Any, head: str | None, client: Any, dry: bool
) -> TagPlan:
    """The read-only preflight of deploy.tag: every check before any change; returns the plan."""
    from lib.changes import commits_between
    from lib.deploy import preflight
    from lib.deploytags import scheme_from_config, today
    from lib.signing import check_signing
    from lib.tagging import has_show_comment, local_tag, push_probe, remote_tag_object, tag_message

    remote = text_setting(c, "deploy.remote")
    main_branch = text_setting(c, "deploy.main_branch")
    scheme = scheme_from_config(c)

    branch = repo.current_branch()
    if branch != main_branch:
        raise UserError(
            f"the checkout is on {branch or 'a detached HEAD'}, not on {main_branch}; "
            f"`git checkout {main_branch}` first"
        )
    # Before the fetch (which would refuse to clobber a local tag): does the remote have it?
    local = local_tag(repo, tag)
    remote_object = remote_tag_object(repo, remote, tag)
    if remote_object and local and remote_object != local.object_sha:
        raise UserError(
            f"remote {remote!r} has a different tag {tag} (object {remote_object[:12]}, local "
            f"{local.object_sha[:12]}); someone else tagged {tag}: compare them, then keep one "
            f"(`git tag -d {tag} && git fetch {remote} tag {tag}` to take the remote's)"
        )
    fetched_from_remote = local is None and remote_object is not None
    preflight(repo, remote=remote, main_branch=main_branch, offline=False)
    local = local_tag(repo, tag)  # the fetch brings in the remote's tag when only it had one

    others = [t for t in repo.tags() if t != tag]
    previous = scheme.previous(others)
    if local is None and remote_object is None:
        expected = scheme.next(previous, others, today())
        if tag != expected:
            last = (
                f"the last deploy tag is {previous}" if previous else "there is no deploy tag yet"
            )
            raise UserError(f"{tag} is not the next deploy tag: {last}, so the next is {expected}")
    elif scheme.previous([*others, tag]) != tag:
        expected = scheme.next(previous, others, today())
        raise UserError(
            f"{tag} is an earlier deploy tag, not the next one: the last is {previous}, so the "
            f"next is {expected}"
        )

    head_sha = repo.rev_parse(head) if head else repo.rev_parse(f"refs/heads/{main_branch}")
    if head_sha is None:
        raise UserError(f"--head {head!r} is not a commit in this repository")
    if not repo.is_ancestor(head_sha, f"refs/heads/{main_branch}"):
        raise UserError(
            f"--head {head} ({head_sha[:7]}) is not on {main_branch}; deploy tags are made on "
            f"the history of {main_branch}"
        )
    if previous and not repo.is_ancestor(f"refs/tags/{previous}", head_sha):
        raise UserError(
            f"head {head_sha[:7]} is not a descendant of the previous deploy tag {previous}"
        )
    if local is not None:
        early = TagPlan(tag, remote, head_sha, previous, [], {}, "", "", local, remote_object)
        early.from_remote = fetched_from_remote
        _check_existing_tag(repo, early, full=False)
    commits = commits_between(repo, previous, head_sha)
    if not commits:
        raise UserError(
            f"nothing to deploy: {head_sha[:7]} has no commits since {previous or 'the start'}"
        )

    bug = find_deploy_bug(c, client, tag, bug_id, require_open=False)
    if bug is None:
        from lib.deploy import deploy_summary

        summary = deploy_summary(c, tag)
        raise UserError(
            f"no deploy bug titled {summary!r} in {setting(c, 'bugzilla.product')}; file it with "
            f"`invoke deploy.prepare --file-bug` or pass --bug"
        )
    bug_url = client.bug_url(int(bug["id"]))
    plan = TagPlan(
        tag=tag,
        remote=remote,
        head=head_sha,
        previous=previous,
        commits=commits,
        bug=bug,
        bug_url=bug_url,
        message=tag_message(c, tag, commits, int(bug["id"]), bug_url),
        local=local,
        remote_object=remote_object,
        from_remote=fetched_from_remote,
    )
    if local is not None:
        _check_existing_tag(repo, plan)
        plan.comment_done = has_show_comment(client.comments(int(bug["id"])), local.object_sha)
    if plan.all_done:
        return plan
    if not plan.comment_done and not _is_open(bug):
        raise UserError(
            f"deploy bug {bug['id']} is {_status_text(bug)}, so the `git show` comment cannot go "
            f"there; reopen it or pass --bug with the open deploy bug"
        )
    if not plan.tag_done:
        setup = check_signing(repo, head_sha)
        plan.notes.append(f"signing works ({setup.describe()})")
    if not plan.push_done:
        try:
            push_probe(repo, remote, tag, head_sha)
            plan.notes.append(f"`git push --dry-run` of refs/tags/{tag} to {remote} is accepted")
        except UserError as exc:
            if not dry:
                raise
            # A dry run needs no push rights (only a real run stops here): report and go on.
            plan.notes.append(f"WARNING, a real run would stop here: {exc.reason}")
    return plan


def require_api_key_for_comment(c: Any, plan: TagPlan, *, dry: bool) -> None:
    """Before any change: the `git show` comment, if still to post, needs a Bugzilla API key
    (the tag and the push do not). Says which remaining step needs it."""
    if dry or plan.comment_done or has_api_key(c):
        return
    started = "" if plan.tag_done else "; nothing was tagged or pushed"
    raise UserError(
        f"no Bugzilla API key: set BUGZILLA_API_KEY (or python-bugzilla's bugzillarc); the "
        f"remaining step of posting `git show {plan.tag}` on bug {plan.bug['id']} needs it"
        f"{started}"
    )


def describe_plan(plan: TagPlan) -> list[str]:
    """The lines shown before the confirmation: what exists and what will be done."""
    lines = [
        f"deploy tag {plan.tag} on {plan.head[:7]} ({len(plan.commits)} commit(s) since "
        f"{plan.previous or 'the start'}); deploy bug {plan.bug['id']}: {plan.bug_url}",
    ]
    lines += [f"  preflight: {note}" for note in plan.notes]
    if plan.tag_done:
        lines.append(f"  done: tag {plan.tag} exists, signed and verified")
    else:
        lines.append(f"  to do: create the signed tag {plan.tag} with this message:")
        lines += [f"    | {line}" for line in plan.message.splitlines()]
    if plan.push_done:
        lines.append(f"  done: {plan.remote} has tag {plan.tag}")
    else:
        lines.append(f"  to do: push refs/tags/{plan.tag} (only that ref) to {plan.remote}")
    if plan.comment_done:
        lines.append(f"  done: bug {plan.bug['id']} has the `git show {plan.tag}` comment")
    else:
        lines.append(f"  to do: post `git show {plan.tag}` on bug {plan.bug['id']}")
    return lines


def _dry_show_preview(repo: GitRepo, plan: TagPlan) -> str:
    """What `git show TAG` will print, for a dry run before the tag exists."""
    ident = repo.read("var", "GIT_COMMITTER_IDENT").rsplit(" ", 2)[0]
    commit = repo.read("-c", "core.pager=cat", "show", "--no-color", "--no-patch", plan.head)
    return (
        f"tag {plan.tag}\nTagger: {ident}\nDate:   (when the tag is made)\n\n{plan.message}"
        f"(the signature, made when the tag is made)\n\n{commit}"
    )


def run_tag(
    repo: GitRepo,
    plan: TagPlan,
    client: Any,
    *,
    dry: bool,
    report: Callable[[str], None] = print,
) -> None:
    """Do the steps the plan says are left, calling `report(line)` as soon as each one is done
    (so a later failure still leaves a record of what happened)."""
    from lib.tagging import (
        build_show_comment,
        create_signed_tag,
        local_tag,
        local_tag_reads,
        push_tag,
        remote_tag_object,
        show_tag,
        show_tag_command,
        verify_failure,
        verify_tag,
    )

    def would_run(*args: str) -> None:
        info(f"dry-run: would run: git {shlex.join(args)}")

    tag, remote = plan.tag, plan.remote
    if not plan.tag_done:
        create_signed_tag(repo, tag, plan.head, plan.message, dry=dry)
        if dry:
            would_run("tag", "-v", tag)
            for args in local_tag_reads(tag, f"<tag object of {tag}>"):
                would_run(*args)
        else:
            if not verify_tag(repo, tag):
                raise UserError(
                    f"tag {tag} was created but `git tag -v {tag}` fails "
                    f"({verify_failure(repo, tag)}); it is not pushed: delete it "
                    f"(`git tag -d {tag}`), fix signing, and rerun"
                )
            plan.local = local_tag(repo, tag)
            report(f"created the signed tag {tag} on {plan.head[:7]} (`git tag -v` accepts it)")
    if not plan.push_done:
        push_tag(repo, remote, tag, dry=dry)
        if dry:
            would_run("ls-remote", "--tags", remote, f"refs/tags/{tag}")
        else:
            plan.remote_object = remote_tag_object(repo, remote, tag)
            if plan.remote_object != plan.local.object_sha:
                raise UserError(
                    f"after the push, {remote!r} has tag {tag} as "
                    f"{plan.remote_object or 'nothing'}, not {plan.local.object_sha[:12]}; "
                    f"check the remote, then rerun"
                )
            report(f"pushed refs/tags/{tag} to {remote} (same tag object on the remote)")
    if not plan.comment_done:
        if dry and plan.local is None:
            would_run(*show_tag_command(tag))
            text, _ = build_show_comment(
                tag, "(known once the tag exists)", _dry_show_preview(repo, plan)
            )
        else:
            text, cut = build_show_comment(tag, plan.local.object_sha, show_tag(repo, tag))
            if cut:
                info(f"the `git show {tag}` comment was cut to fit Bugzilla's comment limit")
        try:
            client.add_comment(int(plan.bug["id"]), text, markdown=True)
        except UserError as exc:
            if dry:
                raise
            if "may or may not have been applied" in exc.reason and _late_comment_landed(
                client, int(plan.bug["id"]), plan.local.object_sha
            ):
                plan.comment_done = True
                report(
                    f"posted `git show {tag}` on bug {plan.bug['id']} (Bugzilla answered late; "
                    f"the comment is there): {plan.bug_url}"
                )
                return
            if "may or may not have been applied" in exc.reason:
                # A rerun now would not see the comment yet and post it a second time.
                raise UserError(
                    f"{exc.reason.split(':', 1)[0]}: the `git show {tag}` comment may still be "
                    f"posted; wait until Bugzilla has answered (a few minutes) and look for it "
                    f"on {plan.bug_url} before rerunning `invoke deploy.tag {tag}`"
                ) from None
            raise UserError(
                f"{exc.reason}; tag {tag} is made and pushed, so rerun `invoke deploy.tag {tag}` "
                f"to post the comment"
            ) from None
        if not dry:
            plan.comment_done = True
            report(f"posted `git show {tag}` on bug {plan.bug['id']}: {plan.bug_url}")


def _late_comment_landed(client: Any, bug_id: int, object_sha: str) -> bool:
    """After a write that timed out: watch the bug for a while (bounded: three times the
    client's timeout, at least 3 s) to see whether the comment landed after all, so that the
    run can finish instead of leaving a rerun to post it a second time."""
    import time

    from lib.tagging import has_show_comment

    deadline = time.monotonic() + max(3.0, 3 * float(getattr(client, "timeout", 10)))
    while time.monotonic() < deadline:
        try:
            if has_show_comment(client.comments(bug_id), object_sha):
                return True
        except UserError:
            pass  # still slow or unreachable: keep watching until the deadline
        time.sleep(1.0)
    return False


# -- deploy.status ---------------------------------------------------------------------------------


@dataclass
class Step:
    key: str
    title: str
    done: bool | None  # None: could not be determined
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"step": self.key, "title": self.title, "done": self.done, "detail": self.detail}


def _error_text(exc: BaseException) -> str:
    return str(getattr(exc, "reason", "") or exc).splitlines()[0][:200]


def deploy_status(
    c: Any, repo: GitRepo, tag: str, *, bug_id: Any = None, echo: bool = False
) -> dict[str, Any]:
    """Each step of the deploy of `tag`, derived from the repository, the remote, Bugzilla and the
    Dockerflow endpoints. Nothing is changed; `echo` prints the Dockerflow requests (dry run)."""
    from lib import dockerflow
    from lib.tagging import has_show_comment, local_tag, remote_tag_object, verify_tag

    remote = text_setting(c, "deploy.remote")
    steps: list[Step] = []
    local = local_tag(repo, tag)
    commit = local.commit_sha if local else None

    bug = None
    client = None
    try:
        # Read-only; in dry-run mode (which prints each request) only under a real dry run.
        client = bugzilla_client(c, dry=echo, need_key=False)
        bug = find_deploy_bug(c, client, tag, bug_id, require_open=False)
        if bug is None:
            steps.append(Step("bug_filed", "deploy bug filed", False, "no bug with the summary"))
        else:
            url = client.bug_url(int(bug["id"]))
            steps.append(
                Step(
                    "bug_filed",
                    "deploy bug filed",
                    True,
                    f"bug {bug['id']} {_status_text(bug)} {url}",
                )
            )
    except UserError as exc:
        if bug_id not in (None, "") and "summary" in exc.reason:
            raise
        steps.append(Step("bug_filed", "deploy bug filed", None, _error_text(exc)))
    except Exception as exc:  # network: the report goes on
        steps.append(Step("bug_filed", "deploy bug filed", None, _error_text(exc)))

    remote_object: str | None = None
    remote_error = ""
    try:
        remote_object = remote_tag_object(repo, remote, tag)
    except UserError as exc:
        remote_error = _error_text(exc)

    if local is not None:
        kind = "annotated" if local.annotated else "lightweight"
        steps.append(Step("tag_created", "tag created", True, f"{kind}, on {local.commit_sha[:7]}"))
        verified = local.signed and verify_tag(repo, tag)
        why = "git tag -v accepts it" if verified else "git tag -v fails"
        steps.append(
            Step(
                "tag_verified",
                "tag signed and verified",
                verified,
                why if local.signed else "unsigned",
            )
        )
    elif remote_object is not None:
        commit = tag_commit(repo, remote, tag)
        steps.append(
            Step(
                "tag_created",
                "tag created",
                True,
                f"on {remote} only (`git fetch {remote} tag {tag}`)",
            )
        )
        steps.append(Step("tag_verified", "tag signed and verified", None, "not fetched here"))
    else:
        steps.append(Step("tag_created", "tag created", False, f"no tag {tag}"))
        steps.append(Step("tag_verified", "tag signed and verified", False, ""))

    if remote_error:
        steps.append(Step("pushed", "tag pushed", None, remote_error))
    elif remote_object is None:
        steps.append(Step("pushed", "tag pushed", False, f"{remote} has no tag {tag}"))
    elif local is not None and remote_object != local.object_sha:
        detail = f"{remote} has a different object {remote_object[:12]}"
        steps.append(Step("pushed", "tag pushed", False, detail))
    else:
        steps.append(Step("pushed", "tag pushed", True, f"{remote} has {remote_object[:12]}"))

    object_sha = local.object_sha if local is not None else remote_object
    if bug is None or client is None:
        known = steps[0].done is False
        steps.append(Step("show_posted", "`git show` posted", False if known else None, "no bug"))
    elif object_sha is None:
        steps.append(Step("show_posted", "`git show` posted", False, "no tag object to look for"))
    else:
        try:
            posted = has_show_comment(client.comments(int(bug["id"])), object_sha)
            detail = f"on bug {bug['id']}" if posted else ""
            steps.append(Step("show_posted", "`git show` posted", posted, detail))
        except Exception as exc:  # network or server error: the report goes on
            steps.append(Step("show_posted", "`git show` posted", None, _error_text(exc)))

    served: dict[str, Any] = {}
    for env in ("stage", "prod"):
        base = text_setting(c, f"deploy.{env}_url")
        answer = dockerflow.fetch_version(base, echo=echo)
        served[env] = {
            "url": base,
            "commit": answer.commit,
            "version": answer.version,
            "error": answer.error,
        }
        if answer.error:
            steps.append(
                Step(f"{env}_serves", f"{env} serves it", None, f"{base}: {answer.describe()}")
            )
        elif commit is None:
            steps.append(
                Step(
                    f"{env}_serves",
                    f"{env} serves it",
                    False,
                    f"serves {answer.describe()}; tag unknown",
                )
            )
        else:
            live = dockerflow.serves(answer, commit, contains_commit(repo))
            detail = f"serves {answer.describe()}"
            if live and answer.commit != commit:
                detail += f", which contains {commit[:7]}"
            steps.append(Step(f"{env}_serves", f"{env} serves it", live, detail))

    if bug is None:
        no_bug = steps[0].done is False  # (None: Bugzilla could not be asked)
        steps.append(Step("bug_resolved", "bug resolved FIXED", False if no_bug else None, ""))
    else:
        fixed = bug.get("resolution") == "FIXED" and not _is_open(bug)
        steps.append(Step("bug_resolved", "bug resolved FIXED", fixed, _status_text(bug)))

    return {
        "tag": tag,
        "commit": commit,
        "bug": int(bug["id"]) if bug else None,
        "served": served,
        "steps": [s.to_json() for s in steps],
        "complete": all(s.done for s in steps),
    }


def print_status_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"deploy {report['tag']}")
    table.add_column("step")
    table.add_column("state")
    table.add_column("detail", overflow="fold")
    marks = {
        True: "[green]done[/green]",
        False: "[yellow]not yet[/yellow]",
        None: "[red]unknown[/red]",
    }
    for step in report["steps"]:
        table.add_row(step["title"], marks[step["done"]], step["detail"])
    Console(file=sys.stdout, width=120).print(table)


# -- deploy.finish ---------------------------------------------------------------------------------


def change_lines(message: str) -> list[str]:
    """The change lines of a deploy tag message (between the first line and `Deploy bug:`)."""
    lines = message.splitlines()[1:]
    return [line for line in lines if line.strip() and not line.startswith("Deploy bug:")]


def closing_comment(c: Any, values: dict[str, Any], changes: list[str]) -> str:
    """The rendered closing comment, its change list cut (with "... and N more; see <link>") so
    that it fits Bugzilla's comment limit."""
    from lib.render import render_config
    from lib.tagging import MAX_COMMENT_LENGTH

    link = f"https://github.com/{values['github_repo']}/releases/tag/{values['tag']}"

    def render(shown: int) -> str:
        context = {
            **values,
            "changes": changes[:shown],
            "more": len(changes) - shown,
            "more_link": link,
        }
        return render_config(c, "deploy_finished.md.j2", context).strip()

    text = render(len(changes))
    if len(text) <= MAX_COMMENT_LENGTH:
        return text
    low, high = 0, len(changes)  # render(low) is assumed to fit; render(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if len(render(middle)) <= MAX_COMMENT_LENGTH:
            low = middle
        else:
            high = middle
    text = render(low)
    if len(text) > MAX_COMMENT_LENGTH:
        raise UserError(
            f"the closing comment is {len(text):,} characters even without the change list, "
            f"over Bugzilla's {MAX_COMMENT_LENGTH:,}; shorten the --note values"
        )
    info(f"the closing comment lists {low} of {len(changes)} changes to fit Bugzilla's limit")
    return text


def finish(
    c: Any, repo: GitRepo, tag: str, *, notes: list[str], force: bool, bug_id: Any, dry: bool
) -> str:
    """Post the closing comment and mark the deploy bug RESOLVED FIXED; returns what happened."""
    from lib import dockerflow
    from lib.tagging import local_tag

    remote = text_setting(c, "deploy.remote")
    client = bugzilla_client(c, dry=dry, need_key=False)
    bug = find_deploy_bug(c, client, tag, bug_id, require_open=False)
    if bug is None:
        raise UserError(f"no deploy bug for {tag}; pass --bug")
    number = int(bug["id"])
    if not _is_open(bug):
        if bug.get("resolution") == "FIXED":
            return f"bug {number} is already {_status_text(bug)}; nothing to do"
        raise UserError(
            f"bug {number} is {_status_text(bug)}, not FIXED; reopen it first if {tag} went out"
        )
    local = local_tag(repo, tag)
    commit = tag_commit(repo, remote, tag)
    if commit is None:
        raise UserError(f"tag {tag} exists neither here nor on {remote!r}; run deploy.tag {tag}")
    prod_url = text_setting(c, "deploy.prod_url")
    served = dockerflow.fetch_version(prod_url, echo=dry)
    live = dockerflow.serves(served, commit, contains_commit(repo))
    if not live and not force:
        raise UserError(
            f"prod ({prod_url}) serves {served.describe()}, not {tag} ({commit[:7]}); wait with "
            f"`invoke deploy.watch {tag}`, or pass --force"
        )
    if not dry and not has_api_key(c):
        raise UserError(
            f"no Bugzilla API key: set BUGZILLA_API_KEY (or python-bugzilla's bugzillarc); the "
            f"remaining step, the closing comment and RESOLVED FIXED on bug {number}, needs it"
        )
    if not live:
        info(f"warning: prod serves {served.describe()}, not {tag}; closing anyway (--force)")
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    comment = closing_comment(
        c,
        {
            "tag": tag,
            "commit": commit,
            "prod_url": prod_url,
            "served": served,
            "live": live,
            "forced": force and not live,
            "when": when,
            "notes": [n for n in notes if n.strip()],
            "github_repo": text_setting(c, "deploy.github_repo"),
        },
        change_lines(local.message) if local and local.annotated else [],
    )
    if not dry:
        # Re-read the bug just before closing it: someone may have resolved it meanwhile.
        fresh = client.get_bug(number)
        if not _is_open(fresh):
            if fresh.get("resolution") == "FIXED":
                return f"bug {number} is already {_status_text(fresh)}; nothing to do"
            raise UserError(
                f"bug {number} is {_status_text(fresh)}, not FIXED; reopen it first if {tag} "
                f"went out"
            )
    client.resolve_fixed(number, comment)
    if dry:
        return f"dry-run: bug {number} would get the closing comment and RESOLVED FIXED"
    return f"bug {number} is RESOLVED FIXED with the closing comment: {client.bug_url(number)}"


# -- deploy.watch ----------------------------------------------------------------------------------


def _seconds(c: Any, key: str, flag: str, value: Any) -> float:
    """A positive number of seconds from `flag` (when given) or the config `key`; the error names
    whichever the value came from."""
    from lib.settings import number

    name = flag if value is not None else key
    seconds = number(c, key, value=value, flag=name)
    if not seconds > 0:
        raise UserError(f"{name} must be more than 0 seconds (got {seconds:g})")
    return float(seconds)


def watch(
    c: Any,
    repo: GitRepo,
    tag: str,
    *,
    env: str,
    timeout: Any = None,
    interval: Any = None,
    echo: bool = False,
) -> str:
    """Wait until the environment serves the tag's commit; the final line, or a UserError."""
    from lib import dockerflow

    if env not in ("prod", "stage"):
        raise UserError(f"--env must be prod or stage (got {env!r})")
    timeout_s = _seconds(c, "deploy.watch_timeout", "--timeout", timeout)
    interval_s = _seconds(c, "deploy.watch_interval", "--interval", interval)
    interval_s = min(interval_s, timeout_s)  # (a longer interval would never poll twice)
    base = dockerflow.checked_base_url(text_setting(c, f"deploy.{env}_url"), f"deploy.{env}_url")
    remote = text_setting(c, "deploy.remote")
    commit = tag_commit(repo, remote, tag)
    if commit is None:
        raise UserError(f"tag {tag} exists neither here nor on {remote!r}; run deploy.tag {tag}")
    heartbeat = dockerflow.fetch_heartbeat(base, echo=echo)
    info(
        f"watching {base}/__version__ for {tag} ({commit[:7]}), every {interval_s:g}s for up to "
        f"{timeout_s:g}s; heartbeat: {heartbeat.detail}"
    )

    def progress(elapsed: float, served: Any) -> None:
        minutes, seconds = divmod(int(elapsed), 60)
        info(f"[{minutes:3d}:{seconds:02d}] {env} serves {served.describe()}")

    result = dockerflow.wait_for_commit(
        base,
        commit,
        timeout=timeout_s,
        interval=interval_s,
        contains=contains_commit(repo),
        progress=progress,
        echo=echo,
    )
    heartbeat = dockerflow.fetch_heartbeat(base, echo=echo)
    if result.live:
        extra = "" if result.last.commit == commit else f" ({result.last.commit[:7]} contains it)"
        if not heartbeat.ok:
            raise UserError(
                f"{env} serves {tag} ({commit[:7]}){extra}, but its heartbeat fails "
                f"({base}/__heartbeat__: {heartbeat.detail}); check the service before "
                f"finishing the deploy",
                code=3,
            )
        nxt = f"; next: invoke deploy.finish {tag}" if env == "prod" else ""
        return f"{env} serves {tag} ({commit[:7]}){extra}; heartbeat: {heartbeat.detail}{nxt}"
    raise UserError(
        f"timed out after {timeout_s:g}s: {env} ({base}) serves {result.last.describe()}, not "
        f"{tag} ({commit[:7]}); heartbeat: {heartbeat.detail}",
        code=2,
    )
