"""The deploy bug in Bugzilla: file it (or reuse it), and ask engineers to verify on stage."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lib.console import info
from lib.deploy import DeployPlan, bug_link
from lib.errors import UserError
from lib.settings import is_dry, text_setting

PRIORITIES = ("P1", "P2")
#: Bugzilla's placeholder assignees: nobody to ask.
_NOBODY = {"nobody@mozilla.org", "nobody@bugzilla.org", ""}


def check_priority(priority: str) -> str:
    """P1 or P2 (any case)."""
    if str(priority).upper() not in PRIORITIES:
        raise UserError(f"--priority must be P1 or P2 (got {priority!r})")
    return str(priority).upper()


#: Longer request targets are refused by BMO's front end (HTTP 414).
MAX_LINK_LENGTH = 8000
PASTE_NOTE = "(paste the description printed by `invoke deploy.prepare` here)"
LINK_OMITS_DESCRIPTION = (
    "the description is too long for a link (BMO refuses links over 8 KiB), so the link "
    "leaves it out"
)


def enter_bug_link(
    c: Any, plan: DeployPlan, priority: str, assignee: str | None = None
) -> tuple[str, bool]:
    """The prefilled enter_bug.cgi link for filing by hand (with --assignee, if given), and
    whether the description had to be left out of it (BMO refuses links over about 8 KiB)."""
    from lib.bugzilla import enter_bug_url

    def link(description: str) -> str:
        return enter_bug_url(
            text_setting(c, "bugzilla.url"),
            product=text_setting(c, "bugzilla.product"),
            component=text_setting(c, "bugzilla.component"),
            summary=plan.summary,
            description=description,
            priority=priority,
            bug_type="task",
            assigned_to=assignee or "",
        )

    full = link(plan.description)
    if len(full) <= MAX_LINK_LENGTH:
        return full, False
    return link(PASTE_NOTE), True


def connect(c: Any) -> Any | None:
    """A BugzillaClient for the configured server, or None when no API key is configured."""
    from lib.bugzilla import api_key_from_environment, client_from_config

    api_key = api_key_from_environment(text_setting(c, "bugzilla.url"))
    return client_from_config(c, dry_run=is_dry(c), api_key=api_key) if api_key else None


def deployer(c: Any, client: Any) -> str | None:
    """The email of the person running the deploy: the API key's user, else bugzilla.user
    (checked against the key on servers without /whoami)."""
    me = client.whoami()
    if me:
        return me
    user = text_setting(c, "bugzilla.user", required=False).strip() or None
    if user and not client.is_key_of(user):
        raise UserError(
            f"bugzilla.user {user!r} is not the Bugzilla account of this API key (set it to "
            f"the email you log in with)"
        )
    return user


def file_or_reuse(
    client: Any,
    plan: DeployPlan,
    *,
    product: str,
    component: str,
    priority: str,
    assignee: str | None,
    me: str | None,
) -> tuple[int, bool]:
    """The deploy bug's id, filed now or found by its exact summary; (id, filed_now).

    `me`: the deployer (see `deployer`), the assignee when `assignee` is None."""
    existing = client.find_bugs(product, plan.summary)
    open_bugs = [b for b in existing if b.get("is_open", True)]
    if open_bugs:
        bug = min(open_bugs, key=lambda b: int(b["id"]))
        bug_id = int(bug["id"])
        info(f"bug {bug_id} already has the summary {plan.summary!r}; reusing it, not filing again")
        _reuse_notes(client, bug, open_bugs, plan, priority=priority, assignee=assignee)
        return bug_id, False
    if existing:
        closed = int(existing[0]["id"])
        raise UserError(
            f"bug {closed} with the summary {plan.summary!r} is already closed; reopen it or "
            f"deploy another tag"
        )
    if assignee is None:
        assignee = me
        if assignee is None:
            info(
                "note: this Bugzilla cannot say whose API key this is, so the bug gets the "
                "component's default assignee; set bugzilla.user or pass --assignee"
            )
    elif not client.user_exists(assignee):
        raise UserError(f"there is no Bugzilla user named {assignee!r} (--assignee)")
    bug_id = client.create_bug(
        product=product,
        component=component,
        summary=plan.summary,
        description=plan.description,
        priority=priority,
        assignee=assignee,
        bug_type="task",
    )
    return int(bug_id), True


def _reuse_notes(
    client: Any,
    bug: dict,
    open_bugs: list[dict],
    plan: DeployPlan,
    *,
    priority: str,
    assignee: str | None,
) -> None:
    """Say what a reused bug does not reflect: a newer plan, options for a new bug, duplicates."""
    bug_id = int(bug["id"])
    others = sorted(int(b["id"]) for b in open_bugs if int(b["id"]) != bug_id)
    if others:
        info(
            f"note: open bug(s) {', '.join(map(str, others))} have the same summary too; "
            f"using the oldest, {bug_id} (close the duplicates)"
        )
    comments = client.comments(bug_id)
    filed_text = str(comments[0].get("text", "")) if comments else ""
    if filed_text.strip() != plan.description.strip():
        info(
            f"note: bug {bug_id}'s description differs from this plan (filed for other changes, "
            f"or from another template); it is left as it is: if the changes printed here need "
            f"verifying, add them to the bug"
        )
    if assignee and _email(bug).lower() != assignee.lower():
        info(f"note: --assignee applies to a new bug only; bug {bug_id} keeps {_email(bug)}")
    if bug.get("priority") in ("P1", "P2", "P3", "P4", "P5") and bug["priority"] != priority:
        info(f"note: --priority applies to a new bug only; bug {bug_id} keeps {bug['priority']}")


def _email(bug: dict) -> str:
    detail = bug.get("assigned_to_detail") or {}
    return str(detail.get("email") or detail.get("name") or bug.get("assigned_to") or "")


#: How many bugs the "cannot see" note names before it counts the rest.
_MISSING_SHOWN = 10


def engineers_to_ask(client: Any, plan: DeployPlan, deployer: str | None) -> dict[str, list[int]]:
    """Assignee email -> the referenced bugs they own (the deployer and nobody excluded)."""
    people: dict[str, list[int]] = {}
    if not plan.bugs:
        return people
    found = client.get_bugs(plan.bugs)
    missing = sorted(set(plan.bugs) - {int(b["id"]) for b in found})
    if missing:
        shown = ", ".join(map(str, missing[:_MISSING_SHOWN]))
        if len(missing) > _MISSING_SHOWN:
            shown += f" and {len(missing) - _MISSING_SHOWN} more"
        info(
            f"note: cannot see {len(missing)} referenced bug(s) ({shown}: private, or not on "
            f"this Bugzilla); nobody asked for them"
        )
    for bug in found:
        email = _email(bug)
        if email.lower() in _NOBODY or (deployer and email.lower() == deployer.lower()):
            continue
        people.setdefault(email, []).append(int(bug["id"]))
    for email, reason in client.accounts_unable_to_answer(people).items():
        bugs = ", ".join(map(str, sorted(people.pop(email))))
        why = "the account is disabled" if reason == "disabled" else "no such Bugzilla user"
        info(f"note: not asking {email} about bug(s) {bugs}: {why}; verify those yourself")
    return {email: sorted(bugs) for email, bugs in sorted(people.items())}


_ASKED_RE = re.compile(r"^\[releng-tasks deploy\.prepare: needinfo (\S+) asked=(\S+)\]$", re.M)


def asked_marker(tag: str, emails: list[str]) -> str:
    """The last line of a needinfo comment: who was asked, so a rerun never asks them again."""
    return f"[releng-tasks deploy.prepare: needinfo {tag} asked={','.join(emails)}]"


def already_asked(client: Any, bug_id: int) -> set[str]:
    """Everyone asked by an earlier needinfo comment of ours on the bug, answered or not."""
    asked: set[str] = set()
    for comment in client.comments(bug_id):
        for match in _ASKED_RE.finditer(str(comment.get("text", ""))):
            asked.update(email.lower() for email in match.group(2).split(","))
    return asked


def pending_needinfo(bug: dict) -> set[str]:
    return {
        str(f.get("requestee", "")).lower()
        for f in bug.get("flags") or []
        if f.get("name") == "needinfo" and f.get("status") == "?"
    }


NEEDINFO_TEMPLATE = "deploy_needinfo.md.j2"


def needinfo_text(c: Any, plan: DeployPlan, people: dict[str, list[int]]) -> str:
    """The comment asking `people` (email -> their bugs) to verify their changes on stage."""
    from lib.render import render_config

    bugzilla_url = text_setting(c, "bugzilla.url")
    text = render_config(
        c,
        NEEDINFO_TEMPLATE,
        {
            "next_tag": plan.next_tag,
            "stage_url": text_setting(c, "deploy.stage_url"),
            "people": [
                {
                    "email": email,
                    "bugs": [{"number": n, "url": bug_link(bugzilla_url, n)} for n in bugs],
                }
                for email, bugs in people.items()
            ],
        },
    )
    return f"{text.rstrip()}\n\n{asked_marker(plan.next_tag, list(people))}\n"


def request_verification(
    c: Any, client: Any, plan: DeployPlan, bug_id: int, deployer: str | None
) -> list[str]:
    """One comment with one needinfo per engineer not already asked; the emails asked."""
    people = engineers_to_ask(client, plan, deployer)
    if bug_id:  # 0: a dry run that would file the bug
        already = pending_needinfo(client.get_bug(bug_id)) | already_asked(client, bug_id)
        people = {email: bugs for email, bugs in people.items() if email.lower() not in already}
    if not people:
        info("nobody to needinfo: no referenced bug has an assignee who still needs asking")
        return []
    if not bug_id:
        needinfo_text(c, plan, people)
        info(f"dry-run: would ask on the new bug: {', '.join(people)}")
        return list(people)
    # A person who blocks needinfo requests makes Bugzilla refuse the whole change: leave them
    # out and send it again (each attempt drops at least one person, so this ends).
    while people:
        try:
            client.add_comment(bug_id, needinfo_text(c, plan, people), needinfo=list(people))
            return list(people)
        except UserError as exc:
            blocking = [e for e in people if _refuses_needinfo(exc.reason, e)]
            if not blocking:
                raise
            for email in blocking:
                bugs = ", ".join(map(str, people.pop(email)))
                info(
                    f"note: not asking {email} about bug(s) {bugs}: they do not accept needinfo "
                    f"requests now; verify those yourself"
                )
    info("nobody to needinfo: every engineer left does not accept needinfo requests now")
    return []


def _refuses_needinfo(message: str, email: str) -> bool:
    """Whether Bugzilla's refusal `message` says that `email` takes no needinfo requests (BMO's
    needinfo_blocked: 'User X is not currently accepting "needinfo" requests.')."""
    lowered = message.lower()
    return email.lower() in lowered and "not currently accepting" in lowered


def publish(
    c: Any,
    plan: DeployPlan,
    *,
    file_bug: bool,
    needinfo: bool,
    priority: str,
    assignee: str | None,
    before_requests: Callable[[], None] = lambda: None,
) -> None:
    """File (or reuse) the deploy bug and ask for verification, or prepare the link to file it
    by hand; what happened goes into `plan.extra`.

    `before_requests` is called once the settings are checked, before the first request to
    Bugzilla (the task shows the text then, so that a Bugzilla failure does not lose it)."""
    client = connect(c) if (file_bug or needinfo) else None
    if (file_bug or needinfo) and client is None:
        info("no Bugzilla API key (BUGZILLA_API_KEY or bugzillarc), so nothing is filed")
    if client is None:
        link, cut = enter_bug_link(c, plan, priority, assignee)
        plan.extra["enter_bug_url"] = link
        plan.extra["enter_bug_url_omits_description"] = cut
        return
    if needinfo:
        # Render the request once before anything is filed: a broken template stops here.
        needinfo_text(c, plan, {"engineer@example.com": plan.bugs[:3]})
    product = text_setting(c, "bugzilla.product")
    component = text_setting(c, "bugzilla.component")
    before_requests()
    # Who runs this (never asked to verify), looked up (and bugzilla.user checked) before
    # anything is filed.
    me = deployer(c, client) if (assignee is None or needinfo) else None
    bug_id, filed = file_or_reuse(
        client,
        plan,
        product=product,
        component=component,
        priority=priority,
        assignee=assignee,
        me=me,
    )
    dry_new = filed and not bug_id  # a dry run: the bug would be filed
    plan.extra.update(
        bug_id=bug_id or None,
        bug_url=client.bug_url(bug_id) if bug_id else None,
        bug_filed_now=filed and not dry_new,
        dry_run=is_dry(c),
    )
    if needinfo:
        try:
            plan.extra["needinfo"] = request_verification(c, client, plan, bug_id, deployer=me)
        except UserError as exc:
            if not bug_id:
                raise
            state = "was filed" if filed else "exists"
            raise UserError(
                f"the deploy bug {state} ({plan.extra['bug_url']}) but the needinfo request "
                f"failed: {exc.reason}; rerun the same command to ask again (it reuses the bug)",
                exc.code,
            ) from None


def outcome_lines(plan: DeployPlan) -> list[str]:
    """What deploy.prepare tells the user after the bug text."""
    extra = plan.extra
    if "enter_bug_url" in extra:
        lines = [f"file it here (prefilled): {extra['enter_bug_url']}"]
        if extra.get("enter_bug_url_omits_description"):
            lines.append(
                f"note: {LINK_OMITS_DESCRIPTION}: paste the description above into the form"
            )
        return lines
    if extra.get("bug_id") is None:
        lines = ["deploy bug: would be filed (dry run; nothing was sent)"]
    else:
        verb = "filed" if extra["bug_filed_now"] else "reused"
        lines = [f"deploy bug ({verb}): {extra['bug_url']}"]
    if extra.get("needinfo"):
        would = "would be requested" if extra.get("dry_run") else "requested"
        lines.append(f"needinfo {would} from: {', '.join(extra['needinfo'])}")
    return lines
