"""The deploy tag in git: its message, what exists locally and on the remote, and `git show`.

Everything here reads the real repository state, so deploy.tag can decide step by step what is
already done (same commit, same message, valid signature, same object on the remote, comment on
the bug) and what is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lib.errors import UserError
from lib.gitrepo import GitRepo

#: Bugzilla refuses longer comments (code 114, comment_too_long) on BMO and upstream 5.x.
MAX_COMMENT_LENGTH = 65_535

_SIGNATURE_STARTS = (
    "-----BEGIN PGP SIGNATURE-----",
    "-----BEGIN SSH SIGNATURE-----",
    "-----BEGIN SIGNED MESSAGE-----",
)


@dataclass
class LocalTag:
    """A tag that exists in the local repository."""

    name: str
    object_sha: str  # the tag object (annotated) or the commit (lightweight)
    commit_sha: str
    annotated: bool
    message: str = ""
    signature: str = ""

    @property
    def signed(self) -> bool:
        return bool(self.signature)


def tag_message(c: Any, tag: str, commits: list[Any], bug_id: int, bug_url: str) -> str:
    """The signed tag's message, from templates/tag_message.txt.j2."""
    from lib.render import render_config

    context = {"tag": tag, "commits": commits, "bug_id": bug_id, "bug_url": bug_url}
    return normalize_message(render_config(c, "tag_message.txt.j2", context))


def normalize_message(text: str) -> str:
    """A message as git stores it with `git tag -m` (cleanup=strip): no trailing blanks per line,
    runs of blank lines collapsed, no leading or trailing blank lines, one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _split_tag_object(raw: str) -> tuple[str, str]:
    """(message, signature) of a `git cat-file tag` text."""
    _, _, body = raw.partition("\n\n")
    for marker in _SIGNATURE_STARTS:
        index = body.find(marker)
        if index != -1 and (index == 0 or body[index - 1] == "\n"):
            return body[:index], body[index:]
    return body, ""


def local_tag_reads(name: str, object_sha: str) -> list[tuple[str, ...]]:
    """The git commands `local_tag` runs for an annotated tag, in order (a dry run prints them
    for the tag it would make)."""
    ref = f"refs/tags/{name}"
    return [
        ("rev-parse", "--verify", "--quiet", ref),
        ("cat-file", "-t", object_sha),
        ("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"),
        ("cat-file", "tag", object_sha),
    ]


def local_tag(repo: GitRepo, name: str) -> LocalTag | None:
    """The tag `name` in the local repository, or None (commands: `local_tag_reads`)."""
    ref = f"refs/tags/{name}"
    out = repo.try_read("rev-parse", "--verify", "--quiet", ref)
    if not out:
        return None
    object_sha = out.strip()
    kind = repo.read("cat-file", "-t", object_sha).strip()
    commit = repo.rev_parse(ref)
    if kind != "tag":
        return LocalTag(name, object_sha, commit or object_sha, annotated=False)
    message, signature = _split_tag_object(repo.read("cat-file", "tag", object_sha))
    return LocalTag(
        name,
        object_sha,
        commit or "",
        annotated=True,
        message=normalize_message(message),
        signature=signature,
    )


def remote_tag_object(repo: GitRepo, remote: str, name: str) -> str | None:
    """The object the remote's refs/tags/`name` points at (asks the remote), or None."""
    ref = f"refs/tags/{name}"
    try:
        out = repo.read("ls-remote", "--tags", remote, ref)
    except UserError as exc:
        raise UserError(
            f"could not ask remote {remote!r} for its tags: {exc.reason.split(': ', 1)[-1]}"
        ) from None
    for line in out.splitlines():
        sha, _, refname = line.partition("\t")
        if refname.strip() == ref:
            return sha.strip()
    return None


def verify_tag(repo: GitRepo, name: str) -> bool:
    """True when `git tag -v` accepts the tag's signature."""
    return repo.try_read("tag", "-v", name) is not None


def verify_failure(repo: GitRepo, name: str) -> str:
    """Why `git tag -v` refuses the tag (its first meaningful stderr line)."""
    result = repo._run(("tag", "-v", name))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("error:", "fatal:")) or "BAD signature" in line or "No public" in line:
            return line.removeprefix("error: ").removeprefix("fatal: ")
    return lines[-1] if lines else "the signature does not verify"


def create_signed_tag(repo: GitRepo, name: str, commit: str, message: str, *, dry: bool) -> None:
    """`git tag -s` (annotated, signed with the user's git configuration); never overwrites."""
    try:
        # The message goes on stdin: thousands of commits exceed the argument length limit.
        repo.write("tag", "-s", "-F", "-", name, commit, dry=dry, input=message)
    except UserError as exc:
        raise UserError(
            f"creating the signed tag {name} failed ({exc.reason.split(': ', 1)[-1]}); nothing "
            f"was tagged. If gpg could not ask for the passphrase, `export GPG_TTY=$(tty)` or "
            f"unlock the key in gpg-agent, then rerun"
        ) from None


def push_probe(repo: GitRepo, remote: str, name: str, commit: str) -> None:
    """Check, without changing the remote, that pushing refs/tags/`name` would be accepted."""
    try:
        repo.read("push", "--dry-run", "--porcelain", remote, f"{commit}:refs/tags/{name}")
    except UserError as exc:
        raise UserError(
            f"pushing refs/tags/{name} to {remote!r} would fail "
            f"(`git push --dry-run`): {exc.reason.split(': ', 1)[-1]}"
        ) from None


def push_tag(repo: GitRepo, remote: str, name: str, *, dry: bool) -> None:
    """Push only refs/tags/`name` (never --tags, which would push every local tag)."""
    ref = f"refs/tags/{name}"
    try:
        repo.write("push", "--porcelain", remote, f"{ref}:{ref}", dry=dry)
    except UserError as exc:
        raise UserError(
            f"pushing {ref} to {remote!r} failed: {exc.reason.split(': ', 1)[-1]}; the tag "
            f"exists locally, so fix the cause and rerun deploy.tag {name} to resume"
        ) from None


# -- the `git show` comment ----------------------------------------------------------------------


def comment_marker(object_sha: str) -> str:
    """The text that identifies the comment of one tag object; a rerun searches for it."""
    return f"(tag object {object_sha})"


def has_show_comment(comments: list[dict[str, Any]], object_sha: str) -> bool:
    marker = comment_marker(object_sha)
    return any(marker in str(comment.get("text", "")) for comment in comments)


def cut_before_diff(show_output: str) -> str:
    """`git show` output up to (not including) the first `diff --git` (or combined diff)."""
    match = re.search(r"^diff --(git|cc|combined) ", show_output, re.MULTILINE)
    text = show_output[: match.start()] if match else show_output
    return text.rstrip() + "\n"


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def build_show_comment(
    name: str, object_sha: str, show_output: str, limit: int = MAX_COMMENT_LENGTH
) -> tuple[str, bool]:
    """The Bugzilla comment for `git show NAME`: a Markdown code block within `limit` characters.

    Returns (text, cut). The first line carries `comment_marker(object_sha)`.
    """
    body = cut_before_diff(show_output)
    header = f"Tagged {name} for deploy to prod: `git show {name}` {comment_marker(object_sha)}\n\n"
    fence = _fence(body)

    def assemble(lines: list[str], note: str) -> str:
        block = "".join(lines)
        return f"{header}{fence}text\n{block}{fence}\n" + (f"\n{note}\n" if note else "")

    lines = body.splitlines(keepends=True)
    text = assemble(lines, "")
    if len(text) <= limit:
        return text, False
    total = len(lines)
    shown = total
    while shown > 0:
        note = (
            f"(Cut to fit Bugzilla's {limit:,}-character comment limit: {shown} of {total} lines "
            f"shown; run `git show {name}` for the rest.)"
        )
        text = assemble(lines[:shown], note)
        if len(text) <= limit:
            return text, True
        excess = len(text) - limit
        # Drop roughly enough lines at once, then one at a time.
        average = max(1, len("".join(lines[:shown])) // shown)
        shown = max(0, min(shown - 1, shown - excess // average))
    note = f"(`git show {name}` is too long for a Bugzilla comment; run it to see the tag.)"
    text = assemble([], note)
    if len(text) > limit:  # a single very long first line: hard cut
        text = text[:limit]
    return text, True


def show_tag_command(name: str) -> tuple[str, ...]:
    return ("-c", "core.pager=cat", "show", "--no-color", name)


def show_tag(repo: GitRepo, name: str) -> str:
    """`git show NAME` as text (no colour, no pager)."""
    return repo.read(*show_tag_command(name))
