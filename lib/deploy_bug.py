"""The deploy bug in Bugzilla: file it (or reuse it), and ask engineers to verify on stage."""

from __future__ import annotations

from typing import Any

from lib.console import info
from lib.deploy import DeployPlan, bug_link
from lib.errors import UserError
from lib.settings import is_dry, setting

PRIORITIES = ("P1", "P2")
#: Bugzilla's placeholder assignees: nobody to ask.
_NOBODY = {"nobody@mozilla.org", "nobody@bugzilla.org", ""}


def check_priority(priority: str) -> str:
    if priority not in PRIORITIES:
        raise UserError(f"--priority must be P1 or P2 (got {priority!r})")
    return priority


def enter_bug_link(c: Any, plan: DeployPlan, priority: str) -> str:
    """The prefilled enter_bug.cgi link for filing by hand."""
    from lib.bugzilla import enter_bug_url

    return enter_bug_url(
        str(setting(c, "bugzilla.url")),
        product=str(setting(c, "bugzilla.product")),
        component=str(setting(c, "bugzilla.component")),
        summary=plan.summary,
        description=plan.description,
        priority=priority,
        bug_type="task",
    )


def connect(c: Any) -> Any | None:
    """A BugzillaClient for the configured server, or None when no API key is configured."""
    from lib.bugzilla import api_key_from_environment, client_from_config

    api_key = api_key_from_environment(str(setting(c, "bugzilla.url")))
    return client_from_config(c, dry_run=is_dry(c), api_key=api_key) if api_key else None


def deployer(c: Any, client: Any) -> str | None:
    """The email of the person running the deploy: the API key's user, else bugzilla.user."""
    return client.whoami() or str(setting(c, "bugzilla.user") or "") or None


def file_or_reuse(
    c: Any, client: Any, plan: DeployPlan, *, priority: str, assignee: str | None
) -> tuple[int, bool]:
    """The deploy bug's id, filed now or found by its exact summary; (id, filed_now)."""
    product = str(setting(c, "bugzilla.product"))
    component = str(setting(c, "bugzilla.component"))
    existing = client.find_bugs(product, plan.summary)
    open_bugs = [b for b in existing if b.get("is_open", True)]
    if open_bugs:
        bug_id = int(min(open_bugs, key=lambda b: int(b["id"]))["id"])
        info(f"bug {bug_id} already has the summary {plan.summary!r}; reusing it, not filing again")
        return bug_id, False
    if existing:
        closed = int(existing[0]["id"])
        raise UserError(
            f"bug {closed} with the summary {plan.summary!r} is already closed; reopen it or "
            f"deploy another tag"
        )
    if assignee is None:
        assignee = deployer(c, client)
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


def _email(bug: dict) -> str:
    detail = bug.get("assigned_to_detail") or {}
    return str(detail.get("email") or detail.get("name") or bug.get("assigned_to") or "")


def engineers_to_ask(client: Any, plan: DeployPlan, deployer: str | None) -> dict[str, list[int]]:
    """Assignee email -> the referenced bugs they own (the deployer and nobody excluded)."""
    people: dict[str, list[int]] = {}
    if not plan.bugs:
        return people
    found = client.get_bugs(plan.bugs)
    missing = sorted(set(plan.bugs) - {int(b["id"]) for b in found})
    if missing:
        info(f"note: cannot see bug(s) {', '.join(map(str, missing))}; nobody asked for them")
    for bug in found:
        email = _email(bug)
        if email.lower() in _NOBODY or (deployer and email.lower() == deployer.lower()):
            continue
        people.setdefault(email, []).append(int(bug["id"]))
    return {email: sorted(bugs) for email, bugs in sorted(people.items())}


def pending_needinfo(bug: dict) -> set[str]:
    return {
        str(f.get("requestee", "")).lower()
        for f in bug.get("flags") or []
        if f.get("name") == "needinfo" and f.get("status") == "?"
    }


def request_verification(
    c: Any, client: Any, plan: DeployPlan, bug_id: int, deployer: str | None
) -> list[str]:
    """One comment with one needinfo per engineer not already asked; the emails asked."""
    from lib.render import render_config

    people = engineers_to_ask(client, plan, deployer)
    already = pending_needinfo(client.get_bug(bug_id))
    people = {email: bugs for email, bugs in people.items() if email.lower() not in already}
    if not people:
        info("nobody to needinfo: no referenced bug has an assignee who still needs asking")
        return []
    bugzilla_url = str(setting(c, "bugzilla.url"))
    text = render_config(
        c,
        "deploy_needinfo.md.j2",
        {
            "next_tag": plan.next_tag,
            "stage_url": setting(c, "deploy.stage_url"),
            "people": [
                {
                    "email": email,
                    "bugs": [{"number": n, "url": bug_link(bugzilla_url, n)} for n in bugs],
                }
                for email, bugs in people.items()
            ],
        },
    )
    client.add_comment(bug_id, text, needinfo=list(people))
    return list(people)
