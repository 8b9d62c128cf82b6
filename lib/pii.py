"""Protected-data (PII) access requests, handled on their Bugzilla bug.

The flow of the how-to: ask the requester to accept the access agreement and their manager to
confirm the need (a comment and a needinfo each), then, once both answered, the admin adds the
requester to the "Hackers" group on Crash Stats, and the bug gets the access-granted reply and is
resolved FIXED.

Every comment this tool posts ends with a marker line, e.g.
``[releng-tasks pii.request: agreement needinfo=a@mozilla.com]``. The state of a request is read
from the bug itself (its comments, flags and history), so every step can be rerun safely and
sees what a colleague did by hand or with this tool.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from lib.errors import UserError

KINDS = ("agreement", "manager")
KIND_LABELS = {"agreement": "access agreement", "manager": "manager confirmation"}
TEMPLATES = {
    "agreement": "pii_agreement_request.md.j2",
    "manager": "pii_manager_request.md.j2",
    "granted": "pii_granted.md.j2",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REQUEST_MARKER = re.compile(
    r"^\[releng-tasks pii\.request: (agreement|manager) needinfo=(\S+?)(?: requester=(\S+?))?\]$",
    re.M,
)
_GRANTED_MARKER = re.compile(r"^\[releng-tasks pii\.grant: granted requester=(\S+?)\]$", re.M)


def request_marker(kind: str, person: str, requester: str) -> str:
    if kind == "agreement":
        return f"[releng-tasks pii.request: agreement needinfo={person}]"
    return f"[releng-tasks pii.request: manager needinfo={person} requester={requester}]"


def granted_marker(requester: str) -> str:
    return f"[releng-tasks pii.grant: granted requester={requester}]"


# ---------------------------------------------------------------------- input checks
def parse_bug_id(value: str) -> int:
    from lib.console import positional

    text = positional(value, "BUG").strip()
    if text.startswith("#"):
        text = text[1:]
    if not text.isdigit() or int(text) <= 0:
        raise UserError(f"BUG must be a Bugzilla bug number such as 1900000, not {value!r}")
    return int(text)


def employee_domains(value: Any) -> list[str]:
    """The `pii.employee_domains` setting as a list (a comma-separated string works too)."""
    from lib.settings import str_list

    domains = [d.lower().lstrip("@") for d in str_list(value)]
    if not domains:
        raise UserError("pii.employee_domains is empty; list the employee email domains")
    return domains


def check_email(value: str | None, option: str) -> str:
    if value is None or not str(value).strip():
        raise UserError(f"{option} EMAIL is required")
    email = str(value).strip()
    if not _EMAIL.match(email):
        raise UserError(f"{option} must be an email address, not {email!r}")
    return email


def check_employee(email: str, domains: list[str], who: str) -> None:
    domain = email.rsplit("@", 1)[1].lower()
    if domain not in domains:
        raise UserError(
            f"{who} {email} is not in an employee domain ({', '.join(domains)}): protected data "
            f"access is only for employees (pii.employee_domains); nothing was posted"
        )


# ---------------------------------------------------------------------- reading the bug
@dataclass
class RequestState:
    """One of the two needinfo requests (agreement or manager confirmation)."""

    kind: str
    person: str
    state: str = "not sent"  # "not sent", "pending" or "answered"
    requested_at: str | None = None
    requested_by: str | None = None
    answered_by: str | None = None
    answered_at: str | None = None
    reply: str | None = None  # first line of the reply comment
    comment_count: int | None = None
    #: Whether `person` replied with a comment of their own after the request (what grants need).
    replied_by_person: bool = False

    @property
    def answered_by_others(self) -> bool:
        """Answered (needinfo cleared), but without a reply comment from the person asked."""
        return self.state == "answered" and not self.replied_by_person


@dataclass
class AccessRequest:
    """Everything pii.* knows about a bug, read from its comments, flags and history."""

    bug_id: int
    url: str
    summary: str
    status: str
    resolution: str
    is_open: bool
    requester: str | None = None
    manager: str | None = None
    requests: dict[str, RequestState] = field(default_factory=dict)
    granted_at: str | None = None
    granted_by: str | None = None

    @property
    def pending(self) -> list[RequestState]:
        return [r for r in self.requests.values() if r.state == "pending"]

    @property
    def not_sent(self) -> list[str]:
        return [
            k for k in KINDS if self.requests.get(k) is None or self.requests[k].state == "not sent"
        ]

    @property
    def answered_by_others(self) -> list[RequestState]:
        return [
            self.requests[k]
            for k in KINDS
            if k in self.requests and self.requests[k].answered_by_others
        ]

    @property
    def granted(self) -> bool:
        return self.granted_at is not None

    def next_step(self) -> str:
        if self.granted:
            if self.is_open:
                return "access granted, but the bug is still open; resolve it by hand"
            return "access granted and the bug resolved; nothing left to do"
        if self.requester is None:
            return (
                f"no request yet: run `invoke pii.request {self.bug_id} --requester EMAIL "
                f"--manager EMAIL`"
            )
        if self.not_sent:
            return (
                f"not all requests were posted: rerun `invoke pii.request {self.bug_id} "
                f"--requester {self.requester} --manager MANAGER`"
            )
        if self.pending:
            waiting = ", ".join(r.person for r in self.pending)
            return f"waiting for {waiting}"
        if self.answered_by_others:
            return (
                f"{not_replied(self.answered_by_others)}: ask again with `invoke pii.request "
                f"{self.bug_id} --requester {self.requester} --manager {self.manager}`, or, if "
                f"you checked their answer elsewhere, `invoke pii.grant {self.bug_id} "
                f"--accept-answer-from-others`"
            )
        return f"both answered: read the replies, then run `invoke pii.grant {self.bug_id}`"

    def to_json(self) -> dict[str, Any]:
        return {
            "bug": self.bug_id,
            "url": self.url,
            "summary": self.summary,
            "status": self.status,
            "resolution": self.resolution,
            "requester": self.requester,
            "manager": self.manager,
            "requests": [asdict(self.requests[k]) for k in KINDS if k in self.requests],
            "granted": self.granted,
            "granted_at": self.granted_at,
            "granted_by": self.granted_by,
            "ready_to_grant": self.requester is not None
            and not self.not_sent
            and not self.pending
            and not self.answered_by_others
            and not self.granted,
            "next_step": self.next_step(),
        }


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(">"):  # skip quoted text of a reply
            return line if len(line) <= 120 else line[:119] + "…"
    return ""


def _creator(comment: dict[str, Any]) -> str:
    return str(comment.get("creator") or comment.get("author") or "")


def _comment_time(comment: dict[str, Any]) -> str:
    return str(comment.get("creation_time") or comment.get("time") or "")


def _is_ours(comment: dict[str, Any]) -> bool:
    text = str(comment.get("text", ""))
    return bool(_REQUEST_MARKER.search(text) or _GRANTED_MARKER.search(text))


def read_request(client: Any, bug_id: int) -> AccessRequest:
    """The state of the access request on the bug (three reads: bug, comments, history)."""
    bug = client.get_bug(bug_id)
    comments = client.comments(bug_id)
    result = AccessRequest(
        bug_id=bug_id,
        url=client.bug_url(bug_id),
        summary=str(bug.get("summary", "")),
        status=str(bug.get("status", "")),
        resolution=str(bug.get("resolution", "")),
        is_open=bool(bug.get("is_open", not bug.get("resolution"))),
    )
    pending = {
        str(f.get("requestee", "")).lower(): f
        for f in client.pending_needinfos(bug)
        if f.get("requestee")
    }
    history: list[dict[str, Any]] | None = None
    for index, comment in enumerate(comments):
        text = str(comment.get("text", ""))
        for match in _REQUEST_MARKER.finditer(text):
            kind, person, requester = match.group(1), match.group(2), match.group(3)
            if kind in result.requests:
                continue  # the first request of each kind counts
            if kind == "agreement":
                result.requester = result.requester or person
            else:
                result.manager = person
                result.requester = result.requester or requester
            state = RequestState(
                kind=kind,
                person=person,
                requested_at=_comment_time(comment),
                requested_by=_creator(comment),
                comment_count=index,
            )
            result.requests[kind] = state
            flag = pending.get(person.lower())
            if flag is not None:
                state.state = "pending"
                continue
            state.state = "answered"
            if history is None:
                history = client.history(bug_id)
            _fill_answer(state, comments[index + 1 :], history)
        granted = _GRANTED_MARKER.search(text)
        if granted and result.granted_at is None:
            result.granted_at = _comment_time(comment)
            result.granted_by = _creator(comment)
            result.requester = result.requester or granted.group(1)
    return result


def not_replied(states: list[RequestState]) -> str:
    """E.g. "manager@x did not reply (needinfo cleared by engineer@x without a reply comment)"."""
    parts = []
    for state in states:
        who = state.answered_by or "someone else"
        how = "with a comment" if state.reply else "without a comment"
        parts.append(
            f"{state.person} did not reply to the {KIND_LABELS[state.kind]} request themselves "
            f"(needinfo cleared by {who} {how})"
        )
    return "; ".join(parts)


def _fill_answer(
    state: RequestState, later: list[dict[str, Any]], history: list[dict[str, Any]]
) -> None:
    """Who cleared the needinfo and when (history), and the first line of the reply.

    The reply of the person asked wins; otherwise the comment of whoever cleared the needinfo
    is shown, and `replied_by_person` stays False.
    """
    label = f"needinfo?({state.person})".lower()
    for entry in history:
        if state.requested_at and str(entry.get("when", "")) < state.requested_at:
            continue
        for change in entry.get("changes", []):
            if (
                change.get("field_name") == "flagtypes.name"
                and label in str(change.get("removed", "")).lower()
                and label not in str(change.get("added", "")).lower()
            ):
                state.answered_by = str(entry.get("who", ""))
                state.answered_at = str(entry.get("when", ""))
    replies = [c for c in later if not _is_ours(c)]
    own = next((c for c in replies if _creator(c).lower() == state.person.lower()), None)
    if own is not None:
        state.replied_by_person = True
        state.reply = _first_line(str(own.get("text", "")))
        if not state.answered_by or state.answered_by.lower() != state.person.lower():
            # Their own reply is the answer, whoever cleared the flag.
            state.answered_by = _creator(own)
            state.answered_at = _comment_time(own)
        return
    if state.answered_by:
        other = next((c for c in replies if _creator(c).lower() == state.answered_by.lower()), None)
        if other is not None:
            state.reply = _first_line(str(other.get("text", "")))


def answer_lines(request: AccessRequest) -> list[str]:
    """One line per request: pending, or answered by whom, when, with the reply's first line."""
    lines = []
    for kind in KINDS:
        state = request.requests.get(kind)
        label = KIND_LABELS[kind]
        if state is None:
            if request.requester is not None:
                lines.append(f"  {label}: not sent")
            continue
        if state.state == "pending":
            lines.append(
                f"  {label} ({state.person}): pending, needinfo since {state.requested_at}"
            )
            continue
        who = state.answered_by or "someone"
        when = f" at {state.answered_at}" if state.answered_at else ""
        reply = f': "{state.reply}"' if state.reply else " (no reply comment)"
        own = "" if state.replied_by_person else f" [no reply from {state.person}]"
        lines.append(f"  {label} ({state.person}): answered by {who}{when}{reply}{own}")
    return lines


def describe(request: AccessRequest) -> list[str]:
    """Human-readable status lines."""
    status = f"{request.status} {request.resolution}".strip()
    lines = [f"bug {request.bug_id} ({status}): {request.summary}"]
    lines.append(f"  {request.url}")
    if request.requester is None:
        lines.append("  no access request was posted on this bug by pii.request")
    lines.extend(answer_lines(request))
    if request.granted:
        lines.append(f"  access granted by {request.granted_by} at {request.granted_at}")
    lines.append(f"  next: {request.next_step()}")
    return lines


# ---------------------------------------------------------------------- the steps
def admin_link(admin_url: str, email: str) -> str:
    """The Crash Stats admin page listing the requester's account."""
    from urllib.parse import quote

    base = admin_url.strip()
    if not base:
        raise UserError("pii.admin_url is empty; set it to the Crash Stats user admin page")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}q={quote(email)}"


@dataclass
class RequestPlan:
    to_post: list[str]  # kinds to post now
    already: list[str]  # kinds already on the bug
    again: list[str] = field(default_factory=list)  # kinds answered by others, asked again


def plan_request(request: AccessRequest, requester: str, manager: str) -> RequestPlan:
    """Which of the two comments still need posting; refuses conflicting or closed requests."""
    if request.granted or not request.is_open:
        raise UserError(
            f"bug {request.bug_id} is {request.status} {request.resolution}".rstrip()
            + "; nothing was posted (reopen it first for a new request)"
        )
    if request.requester and request.requester.lower() != requester.lower():
        raise UserError(
            f"bug {request.bug_id} already holds a request for {request.requester}, not "
            f"{requester}; file a separate bug per person"
        )
    existing_manager = request.requests.get("manager")
    if existing_manager and existing_manager.person.lower() != manager.lower():
        raise UserError(
            f"bug {request.bug_id} already asked {existing_manager.person} to confirm as manager, "
            f"not {manager}; nothing was posted"
        )
    # A request answered by someone else than the person asked is asked again.
    again = [s.kind for s in request.answered_by_others]
    to_post = [k for k in KINDS if k not in request.requests or k in again]
    return RequestPlan(
        to_post=to_post,
        already=[k for k in KINDS if k in request.requests and k not in again],
        again=again,
    )


def request_text(c: Any, kind: str, *, bug_id: int, requester: str, manager: str) -> str:
    from lib.render import render_config
    from lib.settings import text_setting

    context = {
        "bug_id": bug_id,
        "requester": requester,
        "manager": manager,
        "agreement_url": text_setting(c, "pii.agreement_url"),
    }
    body = render_config(c, TEMPLATES[kind], context).rstrip()
    person = requester if kind == "agreement" else manager
    return f"{body}\n\n{request_marker(kind, person, requester)}\n"


def granted_text(c: Any, *, bug_id: int, requester: str) -> str:
    from lib.render import render_config
    from lib.settings import text_setting

    context = {"bug_id": bug_id, "requester": requester, "group": text_setting(c, "pii.group")}
    body = render_config(c, TEMPLATES["granted"], context).rstrip()
    return f"{body}\n\n{granted_marker(requester)}\n"


def check_grantable(request: AccessRequest, *, accept_answer_from_others: bool = False) -> None:
    """Refuse to grant unless the bug is open and both requests were sent and answered.

    Answered means a reply comment from the person asked; a needinfo that someone else cleared
    counts only with `accept_answer_from_others`.
    """
    if request.requester is None:
        raise UserError(
            f"bug {request.bug_id} has no access request from pii.request; run `invoke "
            f"pii.request {request.bug_id} --requester EMAIL --manager EMAIL` first"
        )
    if not request.is_open:
        raise UserError(
            f"bug {request.bug_id} is already {request.status} {request.resolution} without an "
            f"access-granted reply from pii.grant; nothing was changed"
        )
    if request.not_sent:
        missing = ", ".join(KIND_LABELS[k] for k in request.not_sent)
        raise UserError(
            f"bug {request.bug_id} is missing the {missing} request; rerun pii.request first"
        )
    if request.pending:
        waiting = ", ".join(f"{r.person} ({KIND_LABELS[r.kind]})" for r in request.pending)
        raise UserError(
            f"cannot grant yet: the needinfo is still pending for {waiting}; see "
            f"`invoke pii.status {request.bug_id}`"
        )
    others = request.answered_by_others
    if others and not accept_answer_from_others:
        raise UserError(
            f"cannot grant: {not_replied(others)}; ask again with `invoke pii.request "
            f"{request.bug_id} --requester {request.requester} --manager {request.manager}`, "
            f"or accept that answer with --accept-answer-from-others"
        )
