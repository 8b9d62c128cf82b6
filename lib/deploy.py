"""The deploy plan: which tag comes next, what it contains, and the deploy bug's text."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from lib.changes import Commit
from lib.console import info
from lib.deploytags import TagScheme
from lib.deploytags import today as utc_today
from lib.errors import UserError
from lib.gitrepo import GitRepo
from lib.settings import text_setting

#: Bugzilla refuses comments (and so descriptions) longer than this (code 114).
MAX_COMMENT_LENGTH = 65_535
#: Bugzilla's limit for a summary.
MAX_SUMMARY_LENGTH = 255


def deploy_summary(c: Any, tag: str) -> str:
    """The deploy bug's summary for `tag`, from the summary template.

    deploy.tag, deploy.status and deploy.finish find the bug by it, so the template sees only
    what they know too: ``project`` and ``next_tag`` (an overridden template that uses anything
    else fails with "undefined" before anything is filed).
    """
    from lib.render import render_config

    context = {"project": text_setting(c, "deploy.project"), "next_tag": tag}
    summary = render_config(c, SUMMARY_TEMPLATE, context).strip()
    if not summary or "\n" in summary or len(summary) > MAX_SUMMARY_LENGTH:
        raise UserError(
            f"template {SUMMARY_TEMPLATE} must render one line of 1 to "
            f"{MAX_SUMMARY_LENGTH} characters (got {len(summary.splitlines())} line(s), "
            f"{len(summary)} characters)"
        )
    if tag not in summary:
        # Each deploy's bug is found by its summary: without the tag, deploy 102 would reuse
        # the bug of 101.
        raise UserError(
            f"template {SUMMARY_TEMPLATE} must name the tag ({{{{ next_tag }}}}): the deploy "
            f"bug is found by its summary, so {summary!r} would be the same for every deploy"
        )
    return summary


def bug_link(bugzilla_url: str, number: int) -> str:
    """The show_bug.cgi link of bug `number` (never with the URL's user:password)."""
    from lib.bugzilla import web_base

    return f"{web_base(bugzilla_url)}/show_bug.cgi?id={number}"


@dataclass
class DeployPlan:
    project: str
    previous_tag: str | None
    previous_sha: str | None
    next_tag: str
    head: str
    commits: list[Commit]
    bugs: list[int]
    compare_url: str
    summary: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nothing_to_deploy(self) -> bool:
        return not self.commits

    def to_json(self) -> dict[str, Any]:
        """The plan for `--json`; `commits` holds the Commit objects themselves (see json_bytes)."""
        return {
            "project": self.project,
            "previous_tag": self.previous_tag,
            "previous_sha": self.previous_sha,
            "next_tag": self.next_tag,
            "head": self.head,
            "commits": self.commits,
            "bugs": self.bugs,
            "compare_url": self.compare_url,
            "summary": self.summary,
            "description": self.description,
            "nothing_to_deploy": self.nothing_to_deploy,
            **self.extra,
        }

    def json_bytes(self) -> bytes:
        """The plan as one line of JSON (UTF-8)."""
        import orjson

        try:
            return orjson.dumps(self.to_json())
        except orjson.JSONEncodeError as exc:  # e.g. a setting holding bytes that are not UTF-8
            raise UserError(f"could not write the plan as JSON: {exc}") from None


def _list_some(paths: list[str], most: int = 5) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def preflight(repo: GitRepo, *, remote: str, main_branch: str, offline: bool) -> None:
    """Read-only checks before anything is planned or filed; each failure is one UserError."""
    pending_dirty = repo.start_dirty_paths()  # runs while the branch is checked
    if repo.rev_parse(f"refs/heads/{main_branch}") is None:
        if repo.rev_parse("HEAD") is None and not repo.read("for-each-ref", "--count=1").strip():
            raise UserError(f"the repository {repo.path} has no commits yet")
        raise UserError(
            f"branch {main_branch!r} does not exist in {repo.path} (set deploy.main_branch)"
        )
    if repo.is_shallow():
        raise UserError(
            f"{repo.path} is a shallow clone, so the history since the last deploy tag may be "
            f"missing; run `git fetch --unshallow {remote}` first"
        )
    dirty = pending_dirty()
    if dirty:
        raise UserError(
            f"the working tree of {repo.path} is not clean: {_list_some(dirty)}; "
            f"commit or stash them first (`git stash --include-untracked` stashes new files too)"
        )
    if offline:
        return
    repo.fetch(remote, main_branch)
    upstream = f"refs/remotes/{remote}/{main_branch}"
    if repo.rev_parse(upstream) is None:
        raise UserError(f"remote {remote!r} has no branch {main_branch!r}")
    ahead, behind = repo.ahead_behind(f"refs/heads/{main_branch}", upstream)
    local, theirs = main_branch, f"{remote}/{main_branch}"
    if ahead and behind:
        raise UserError(
            f"local {local} and {theirs} have diverged ({ahead} and {behind} commits); "
            f"keep what you need, then `git checkout {local} && git reset --hard {theirs}`"
        )
    if ahead:
        raise UserError(
            f"local {local} is {ahead} commit(s) ahead of {theirs}; deploy only what the remote "
            f"has: push them first (`git push {remote} {local}`) or `git reset --hard {theirs}`"
        )
    if behind:
        raise UserError(
            f"local {local} is {behind} commit(s) behind {theirs}; update it with "
            f"`git checkout {local} && git pull --ff-only {remote} {local}`"
        )


def resolve_range(
    repo: GitRepo,
    tags: dict[str, str | None],
    main_sha: str | None,
    *,
    main_branch: str,
    since: str | None,
    head: str | None,
    previous: str | None,
) -> tuple[str | None, str | None, str]:
    """(previous tag, its commit, head commit) for the deploy.

    `tags`: every tag with the commit it names; `main_sha`: the main branch's tip.
    """
    if since is not None:
        previous = since
        if since not in tags:
            raise UserError(f"--since tag {since!r} does not exist")
        previous_sha = tags[since]
        if previous_sha is None:
            raise UserError(f"--since tag {since!r} does not name a commit")
    elif previous:
        previous_sha = tags.get(previous)
        if previous_sha is None:
            raise UserError(
                f"the last deploy tag {previous} does not name a commit; delete it "
                f"(`git tag -d {previous}`) or choose the previous tag with --since"
            )
    else:
        previous_sha = None
    if head is None:
        if main_sha is None:
            raise UserError(f"branch {main_branch!r} does not exist in {repo.path}")
        head_sha = main_sha
    else:
        head_sha = repo.rev_parse(head)
        if head_sha is None:
            raise UserError(f"--head {head!r} is not a commit in this repository")
    return previous, previous_sha, head_sha


def refuse_own_checkout(repo: GitRepo) -> None:
    """Filing or tagging the releng-tasks checkout itself is a mistake: it is not the service."""
    from lib.settings import PROJECT_ROOT

    if repo.path.resolve() == PROJECT_ROOT.resolve():
        raise UserError(
            f"{repo.path} is the releng-tasks checkout itself, not the service; point --repo "
            f"(or deploy.repo) at the service's checkout, e.g. --repo ~/src/socorro"
        )


def deploy_tags(
    local: list[str], scheme: TagScheme, remote: str, remote_tags: list[str] | None
) -> tuple[str | None, list[str]]:
    """(the previous deploy tag, every tag name the next one must not collide with), from the
    `local` tag names and the remote's (None when offline).

    Online, the remote's tags are the truth: a higher deploy tag that exists only here (never
    pushed, or left by an abandoned deploy) would silently drop commits, so it is refused.
    """
    if remote_tags is None:
        return scheme.previous(local), local
    previous = scheme.previous(remote_tags)
    unpushed = [t for t in local if scheme.is_valid(t) and t not in set(remote_tags)]
    newest_unpushed = scheme.previous(unpushed)
    if newest_unpushed and (
        previous is None or scheme.sort_key(newest_unpushed) > scheme.sort_key(previous)
    ):
        raise UserError(
            f"deploy tag {newest_unpushed} exists here but not on {remote!r}; finish that deploy "
            f"(`invoke deploy.tag {newest_unpushed}`) or delete the tag (`git tag -d "
            f"{newest_unpushed}`)"
        )
    return previous, sorted(set(local) | set(remote_tags))


def warn_if_other_tags(scheme: TagScheme, tags: list[str]) -> None:
    """A first deploy in a repository that has tags, none of them of the configured scheme, is
    more often a wrong deploy.tag_scheme or deploy.tag_prefix: say so (on stderr)."""
    if not tags:
        return
    examples = ", ".join(sorted(tags, reverse=True)[:3]) + (", ..." if len(tags) > 3 else "")
    prefix = f" with prefix {scheme.prefix!r}" if scheme.prefix else ""
    article = "an" if scheme.kind[0] in "aeiou" else "a"
    info(
        f"note: none of the repository's {len(tags)} tag(s) ({examples}) "
        f"is {article} {scheme.kind} deploy tag{prefix}, so this is planned as a first deploy "
        f"with every commit; if that is wrong, check deploy.tag_scheme and deploy.tag_prefix or "
        f"pass --since"
    )


#: OWNER/REPO: an owner is letters, digits, "-" (and "_" for enterprise-managed users), not
#: starting with a punctuation mark; a repository name may not be "." or "..".
GITHUB_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/(?!\.\.?$)[A-Za-z0-9_.-]+")


def compare_url(github_repo: str, previous: str | None, head_sha: str) -> str:
    if not GITHUB_REPO_RE.fullmatch(github_repo):
        raise UserError(f"deploy.github_repo must look like OWNER/REPO (got {github_repo!r})")
    if previous:
        from urllib.parse import quote

        # A tag may hold characters that end or change a URL path (#, ?, %, space): encode them.
        return f"https://github.com/{github_repo}/compare/{quote(previous, safe='/')}...{head_sha}"
    return f"https://github.com/{github_repo}/commits/{head_sha}"


#: The templates of the deploy bug.
SUMMARY_TEMPLATE = "deploy_bug_summary.txt.j2"
DESCRIPTION_TEMPLATE = "deploy_bug_description.md.j2"


def _text_context(c: Any, plan: DeployPlan) -> dict[str, Any]:
    from lib.dockerflow import checked_base_url

    bugs_base = bug_link(text_setting(c, "bugzilla.url"), 0)[:-1]
    return {
        "project": plan.project,
        "next_tag": plan.next_tag,
        "previous_tag": plan.previous_tag,
        "previous_sha": plan.previous_sha or "",
        "head": plan.head,
        "bugs": [{"number": n, "url": f"{bugs_base}{n}"} for n in plan.bugs],
        "compare_url": plan.compare_url,
        "stage_url": checked_base_url(text_setting(c, "deploy.stage_url"), "deploy.stage_url"),
        "prod_url": checked_base_url(text_setting(c, "deploy.prod_url"), "deploy.prod_url"),
    }


def render_texts(c: Any, plan: DeployPlan) -> None:
    """Fill the plan's summary and description from the templates, within Bugzilla's limit."""
    from lib.render import render_config

    context = _text_context(c, plan)
    plan.summary = deploy_summary(c, plan.next_tag)
    commits, bugs = plan.commits, context["bugs"]

    def description_with(fraction: float) -> str:
        shown_commits = commits[: int(len(commits) * fraction)]
        shown_bugs = bugs[: int(len(bugs) * fraction)]
        return render_config(
            c,
            DESCRIPTION_TEMPLATE,
            {
                **context,
                "commits": shown_commits,
                "omitted_commits": len(commits) - len(shown_commits),
                "bugs": shown_bugs,
                "omitted_bugs": len(bugs) - len(shown_bugs),
            },
        )

    # Estimate from the text without any commit or bug how large a share fits, so that a huge
    # deploy is not rendered in full only to be cut; then shrink until it really fits.
    fraction = 1.0
    overhead = len(description_with(0.0))
    wanted = sum(len(x.summary) + len(x.author) + 16 for x in commits)
    wanted += sum(len(b["url"]) + 16 for b in bugs)
    if overhead + wanted > MAX_COMMENT_LENGTH:
        fraction = max(0.0, (MAX_COMMENT_LENGTH - overhead) / wanted)
    while True:
        description = description_with(fraction)
        if len(description) <= MAX_COMMENT_LENGTH or fraction == 0:
            break
        fraction = min(fraction * 0.98, fraction * MAX_COMMENT_LENGTH / len(description))
        if fraction < 0.001:
            fraction = 0.0
    if not description.strip():
        raise UserError(f"template {DESCRIPTION_TEMPLATE} rendered an empty description")
    plan.description = description.rstrip() + "\n"


def build_plan(
    c: Any,
    repo: GitRepo,
    *,
    since: str | None = None,
    head: str | None = None,
    remote_tags: list[str] | None = None,
    today: datetime.date | None = None,
    filing: bool = False,
) -> DeployPlan:
    """The deploy plan from the repository's real history (after preflight).

    `remote_tags`: the remote's tag names (None when offline: the local tags are used).
    `filing`: the plan is for a bug to file, so a head that deploy.tag would refuse (one not on
    the main branch) is an error rather than a note.
    """
    from lib.changes import start_history
    from lib.deploytags import scheme_from_config
    from lib.render import preload_config

    scheme = scheme_from_config(c)
    main_branch = text_setting(c, "deploy.main_branch")
    remote = text_setting(c, "deploy.remote")
    main_ref = f"refs/heads/{main_branch}"
    refs = repo.ref_commits(main_ref, "refs/tags")
    tags = {
        name.removeprefix("refs/tags/"): sha
        for name, sha in refs.items()
        if name.startswith("refs/tags/")
    }
    last_tag, taken = deploy_tags(list(tags), scheme, remote, remote_tags)
    if last_tag is None and since is None:
        warn_if_other_tags(scheme, remote_tags if remote_tags is not None else list(tags))
    previous, previous_sha, head_sha = resolve_range(
        repo,
        tags,
        refs.get(main_ref),
        main_branch=main_branch,
        since=since,
        head=head,
        previous=last_tag,
    )
    next_tag = scheme.next(last_tag, taken, today or utc_today())
    url = compare_url(text_setting(c, "deploy.github_repo"), previous, head_sha)
    pending = start_history(repo, previous_sha, head_sha)
    try:
        # While git walks the history (on another core), load what the texts need: Jinja2,
        # the compiled templates, and the Bugzilla link helpers (checking bugzilla.url).
        preload_config(c, [SUMMARY_TEMPLATE, DESCRIPTION_TEMPLATE])
        bug_link(text_setting(c, "bugzilla.url"), 0)
    except BaseException:
        pending.cancel()
        raise
    history = pending.result()
    if not history.since_is_ancestor:
        raise UserError(
            f"head {head_sha[:7]} is not a descendant of the previous deploy tag {previous}; "
            f"choose another --head or --since"
        )
    plan = DeployPlan(
        project=text_setting(c, "deploy.project"),
        previous_tag=previous,
        previous_sha=previous_sha,
        next_tag=next_tag,
        head=head_sha,
        commits=history.commits,
        bugs=sorted({n for commit in history.commits for n in commit.bugs}),
        compare_url=url,
    )
    if head is not None and not repo.is_ancestor(head_sha, main_ref):
        if filing:
            raise UserError(
                f"--head {head} ({head_sha[:7]}) is not on {main_branch}, and deploy tags are "
                f"made on the history of {main_branch}: merge it first; nothing was filed"
            )
        info(f"note: --head {head} is not on {main_branch}")
    render_texts(c, plan)
    return plan
