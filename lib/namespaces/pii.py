"""Protected-data (PII) access requests, handled on their Bugzilla bug."""

from __future__ import annotations

import json

from invoke import task

from lib.console import info
from lib.settings import is_dry, setting, text_setting


def _client(c, *, need_key: bool):
    from lib.bugzilla import client_from_config
    from lib.errors import UserError

    client = client_from_config(c, dry_run=is_dry(c))
    if need_key and not client.api_key and not client.dry_run:
        raise UserError(
            "no Bugzilla API key: set BUGZILLA_API_KEY or put api_key in your bugzillarc "
            "(see the README); nothing was posted"
        )
    return client


@task(
    auto_shortflags=False,
    help={
        "bug": "The access request's bug number.",
        "requester": "Email of the person asking for access (must be in pii.employee_domains).",
        "manager": "Email of the requester's manager, asked to confirm the need.",
    },
)
def request(c, bug, requester=None, manager=None):
    """Needinfo the requester (agreement) and their manager (confirmation)."""
    from lib import pii
    from lib.errors import UserError

    bug_id = pii.parse_bug_id(bug)
    requester = pii.check_email(requester, "--requester")
    manager = pii.check_email(manager, "--manager")
    if requester.lower() == manager.lower():
        raise UserError("--manager must be someone other than the requester")
    domains = pii.employee_domains(setting(c, "pii.employee_domains", many=True))
    pii.check_employee(requester, domains, "requester")
    pii.check_employee(manager, domains, "manager")

    client = _client(c, need_key=True)
    state = pii.read_request(client, bug_id)
    plan = pii.plan_request(state, requester, manager)
    for kind in plan.already:
        info(f"bug {bug_id}: the {pii.KIND_LABELS[kind]} request was already posted; not again")
    if plan.again:
        info(
            f"bug {bug_id}: asking again, since "
            f"{pii.not_replied([state.requests[k] for k in plan.again])}"
        )
    if not plan.to_post:
        print(f"nothing to post: both requests are on {state.url}")
        return
    # Check every account before posting anything, so a typo leaves the bug untouched.
    for email in (requester, manager):
        if not client.user_exists(email):
            raise UserError(f"there is no Bugzilla account for {email}; nothing was posted")
    texts = {
        kind: pii.request_text(c, kind, bug_id=bug_id, requester=requester, manager=manager)
        for kind in plan.to_post
    }
    for kind in plan.to_post:
        person = requester if kind == "agreement" else manager
        client.add_comment(bug_id, texts[kind], needinfo=[person])
        verb = "would ask" if client.dry_run else "asked"
        print(f"{verb} {person} for the {pii.KIND_LABELS[kind]} (needinfo) on {state.url}")


@task(
    auto_shortflags=False,
    help={
        "bug": "The access request's bug number.",
        "json": "Print the state as JSON on stdout (nothing else on stdout).",
    },
)
def status(c, bug, json_=False):
    """Show each request: pending, or answered (by whom, when, first line)."""
    from lib import pii

    bug_id = pii.parse_bug_id(bug)
    state = pii.read_request(_client(c, need_key=False), bug_id)
    if json_:
        print(json.dumps(state.to_json(), indent=2, ensure_ascii=False))
        return
    for line in pii.describe(state):
        print(line)


@task(
    auto_shortflags=False,
    help={
        "bug": "The access request's bug number.",
        "yes": "Confirm that the admin step was done (required without a terminal).",
        "accept-answer-from-others": "Grant although a needinfo was cleared by someone other "
        "than the person asked, without their own reply comment (prints whose answer is "
        "accepted). Without it, grant refuses; `pii.request` asks them again.",
    },
)
def grant(c, bug, yes=False, accept_answer_from_others=False):
    """Print the admin step, then post the granted reply and resolve FIXED.

    Each request must be answered by the person asked, with a reply comment of their own.
    """
    from lib import pii
    from lib.console import confirm

    bug_id = pii.parse_bug_id(bug)
    client = _client(c, need_key=True)
    state = pii.read_request(client, bug_id)
    if state.granted:
        done = "resolved" if not state.is_open else "replied to (the bug is still open)"
        print(f"bug {bug_id}: access was already granted ({done}); nothing to do")
        return
    pii.check_grantable(state, accept_answer_from_others=accept_answer_from_others)
    for other in state.answered_by_others:
        info(
            f"accepting the answer of {other.answered_by or 'someone else'} for the "
            f"{pii.KIND_LABELS[other.kind]} asked of {other.person} (--accept-answer-from-others)"
        )
    requester = state.requester
    group = text_setting(c, "pii.group")
    link = pii.admin_link(text_setting(c, "pii.admin_url"), requester)
    text = pii.granted_text(c, bug_id=bug_id, requester=requester)
    print(f"bug {bug_id}: both requests answered")
    for line in pii.answer_lines(state):
        print(line)
    print("Admin step (by hand, on Crash Stats):")
    print(f"  1. open {link}")
    print(f'  2. open the account of {requester}, add it to the "{group}" group, and save')
    print("     (no account listed: ask them to log in to Crash Stats once, then come back)")
    if client.dry_run:
        info("dry-run: not asking for confirmation")
    else:
        confirm(f'Is {requester} in the "{group}" group now?', yes)
    client.resolve_fixed(bug_id, text)
    if client.dry_run:
        print(f"dry-run: would post the access-granted reply and resolve {state.url} FIXED")
    else:
        print(f"posted the access-granted reply and resolved {state.url} FIXED")
