"""A fake Bugzilla REST server for the tests (stdlib only).

It follows /work/shared/reference/bugzilla-rest.md section 4: the shapes, status codes and error
envelopes of BMO (bugzilla.mozilla.org), or of upstream Bugzilla 5.0 with ``mode="upstream"``
(the X-BUGZILLA-API-KEY header is silently ignored, no bug ``type``, ``version`` required, no
/whoami, new bugs CONFIRMED, ``alias`` as a list).

python-bugzilla talks to it over real HTTP on 127.0.0.1. Test hooks that are not Bugzilla:

* ``server.journal``: every request (method, path, query, auth form, body), keys redacted;
* ``server.add_fault(...)``: answer a method/path pattern with a status, a body, after a delay;
* state accessors (``add_user``, ``add_bug``, ``bug``, ``flags``, ``comments``...) to seed and
  inspect the server directly, and ``act_as(email)`` to change a bug as another user (e.g. the
  requestee of a needinfo answering it).

Permission rules of live BMO (MozChangeField: severity needs a comment, editbugs for priority...)
are deliberately left out.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

DOCUMENTATION = "https://bmo.readthedocs.io/en/latest/api/"
REDACTED = "<redacted>"
NEEDINFO_TYPE_ID = 800
FIRST_BUG_ID = 1900000
MAX_COMMENT_LENGTH = 65535
MAX_TARGET_LENGTH = 8192

#: Seeded users: email -> API key. The first one is the release engineer running the tasks.
RELENG = "releng@mozilla.com"
SEED_USERS = {
    RELENG: "releng-api-key-5f0c1e7d2b",
    "engineer@mozilla.com": "engineer-api-key-91ab33",
    "manager@mozilla.com": "manager-api-key-7c2d40",
    "requester@mozilla.com": "requester-api-key-0d9e18",
    "contractor@example.com": "contractor-api-key-44e1aa",
}

#: HTTP status for a Bugzilla error code (REST_STATUS_CODE_MAP); anything else is 400.
_STATUS_FOR_CODE = {
    51: 404,
    101: 404,
    32614: 404,
    **{code: 401 for code in (102, 106, 109, 110, 113, 115, 120, 410, 504, 505)},
    **{code: 401 for code in range(300, 305)},
    58: 413,
}

BMO_OPEN = ("UNCONFIRMED", "NEW", "ASSIGNED", "REOPENED")
UPSTREAM_OPEN = ("UNCONFIRMED", "CONFIRMED", "IN_PROGRESS")
CLOSED_STATUSES = ("RESOLVED", "VERIFIED")
BMO_RESOLUTIONS = (
    "FIXED",
    "INVALID",
    "WONTFIX",
    "DUPLICATE",
    "WORKSFORME",
    "INCOMPLETE",
    "EXPIRED",
)
UPSTREAM_RESOLUTIONS = ("FIXED", "INVALID", "WONTFIX", "DUPLICATE", "WORKSFORME")
BUG_TYPES = ("defect", "enhancement", "task")
BMO_SEVERITIES = ("S1", "S2", "S3", "S4", "N/A", "--")
UPSTREAM_SEVERITIES = ("blocker", "critical", "major", "normal", "minor", "trivial", "enhancement")
BMO_PRIORITIES = ("P1", "P2", "P3", "P4", "P5", "--")
UPSTREAM_PRIORITIES = ("Highest", "High", "Normal", "Low", "Lowest", "---")


class BugzillaFault(Exception):
    """A Bugzilla error: becomes the JSON envelope with the mapped HTTP status."""

    def __init__(self, code: int, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_FOR_CODE.get(code, 400)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _no_user(name: str) -> BugzillaFault:
    return BugzillaFault(
        51,
        f"There is no user named '{name}'. Either you mis-typed the name or that user has not "
        "yet registered for a Bugzilla account.",
    )


@dataclass
class JournalEntry:
    """One request as the server saw it; every API key value is replaced by <redacted>."""

    method: str
    path: str
    query: dict[str, list[str]]
    auth: str | None  # form that authenticated: header, query:Bugzilla_api_key, body:api_key...
    auth_forms: list[str]  # every form in which a key was present
    user: str | None  # email the request ran as (None: anonymous)
    body: Any
    headers: dict[str, str]
    key_in_url: bool  # an API key appeared in the request target
    target: str  # the request target with keys redacted
    status: int = 0


@dataclass
class Fault:
    method: str
    path: str
    status: int | None
    body: str | bytes | dict | None
    content_type: str
    delay: float
    remaining: int | None  # None: forever
    after: int = 0  # matching requests let through before the fault starts
    hits: int = 0


@dataclass
class User:
    id: int
    email: str
    real_name: str
    nick: str
    can_login: bool = True
    groups: list[str] = field(default_factory=list)
    #: BMO lets a user block needinfo requests (needinfo_blocked); not part of the user record.
    accepts_needinfo: bool = True

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.email, "real_name": self.real_name, "nick": self.nick}

    def full(self) -> dict[str, Any]:
        return {
            **self.public(),
            "email": self.email,
            "can_login": self.can_login,
            "groups": [{"name": g} for g in self.groups],
        }


class FakeBugzilla:
    """The server state, and a ThreadingHTTPServer serving it on 127.0.0.1 (an OS-chosen port)."""

    def __init__(self, mode: str = "bmo") -> None:
        if mode not in ("bmo", "upstream"):
            raise ValueError(f"mode must be bmo or upstream, not {mode!r}")
        self.mode = mode
        self.version = "20260820.1" if mode == "bmo" else "5.0.4"
        #: BMO's Needinfo extension clears the commenter's needinfo; upstream flags stay.
        self.needinfo_clears_on_comment = mode == "bmo"
        #: Legal priorities; on upstream an admin may add P1..P5 to the stock list.
        self.priorities = list(BMO_PRIORITIES if mode == "bmo" else UPSTREAM_PRIORITIES)
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.api_keys: dict[str, str] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.bugs: dict[int, dict[str, Any]] = {}
        self._comments: dict[int, list[dict[str, Any]]] = {}
        self._history: dict[int, list[dict[str, Any]]] = {}
        self.journal: list[JournalEntry] = []
        self.faults: list[Fault] = []
        self._next_bug = FIRST_BUG_ID
        self._next_comment = 5000
        self._next_flag = 2000000
        self._next_user = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._port: int | None = None  # kept after stop(), so tests can hit a dead port
        self._thread: threading.Thread | None = None
        # User 1 is BMO's default assignee (python-bugzilla's `logged_in` asks for ids=1).
        self.add_user("nobody@mozilla.org", real_name="Nobody; OK to take it and work on it")
        for email, key in SEED_USERS.items():
            self.add_user(email, api_key=key)
        self.add_product("Socorro", ["Infra", "General", "Data Access"])
        self.add_product("Firefox", ["General"])

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeBugzilla:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.fake = self  # type: ignore[attr-defined]
        self._httpd = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeBugzilla:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The REST base to configure clients with (`.../rest/`)."""
        return f"{self.base}/rest/"

    # ------------------------------------------------------------------ seeding
    def add_user(
        self,
        email: str,
        *,
        api_key: str | None = None,
        real_name: str | None = None,
        nick: str | None = None,
        can_login: bool = True,
        groups: list[str] | None = None,
        accepts_needinfo: bool = True,
    ) -> User:
        with self.lock:
            self._next_user += 1
            user = User(
                id=self._next_user,
                email=email,
                real_name=real_name or email.split("@")[0].replace(".", " ").title(),
                nick=nick or email.split("@")[0],
                can_login=can_login,
                groups=list(groups or []),
                accepts_needinfo=accepts_needinfo,
            )
            self.users[email] = user
            if api_key:
                self.api_keys[api_key] = email
            return user

    def key_for(self, email: str) -> str:
        for key, owner in self.api_keys.items():
            if owner == email:
                return key
        raise KeyError(email)

    def add_product(
        self,
        name: str,
        components: list[str],
        versions: list[str] | None = None,
        default_version: str = "unspecified",
    ) -> None:
        with self.lock:
            self.products[name] = {
                "components": list(components),
                "versions": list(versions or ["unspecified"]),
                "default_version": default_version,
            }

    def add_bug(self, *, creator: str = RELENG, description: str = "", **fields: Any) -> int:
        """Seed a bug directly (no validation); returns its id."""
        with self.lock:
            bug_id = self._new_bug_record(creator, fields)
            self._add_comment_record(bug_id, creator, description)
            return bug_id

    def bug(self, bug_id: int) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.bugs[bug_id])

    def flags(self, bug_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.bugs[bug_id]["flags"])

    def needinfos(self, bug_id: int) -> list[str]:
        """Requestees of the pending needinfo flags of a bug."""
        return [
            f.get("requestee", "")
            for f in self.flags(bug_id)
            if f["name"] == "needinfo" and f["status"] == "?"
        ]

    def comments(self, bug_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._comments[bug_id])

    def requests(self, method: str | None = None, path: str | None = None) -> list[JournalEntry]:
        """The journal, filtered by method and path glob (e.g. '/rest/bug/*')."""
        with self.lock:
            return [
                e
                for e in self.journal
                if (method is None or e.method == method)
                and (path is None or fnmatch.fnmatchcase(e.path, path))
            ]

    def writes(self) -> list[JournalEntry]:
        return [e for e in self.requests() if e.method in ("POST", "PUT", "DELETE")]

    def add_fault(
        self,
        path: str,
        *,
        method: str = "*",
        status: int | None = 500,
        body: str | bytes | dict | None = None,
        content_type: str = "application/json",
        delay: float = 0.0,
        count: int | None = 1,
        after: int = 0,
    ) -> Fault:
        """Answer requests matching METHOD and PATH glob (e.g. '/rest/bug*') with STATUS and BODY.

        status=None with a delay only slows the request down, then serves it normally.
        count=None keeps the fault forever; after=N lets the first N matching requests through.
        Default body: a JSON error envelope for the status.
        """
        fault = Fault(method.upper(), path, status, body, content_type, delay, count, after)
        with self.lock:
            self.faults.append(fault)
        return fault

    def act_as(self, email: str) -> ActingUser:
        """Change bugs as another user, through the same logic as the HTTP API."""
        return ActingUser(self, email)

    # ------------------------------------------------------------------ internals
    @property
    def open_statuses(self) -> tuple[str, ...]:
        return BMO_OPEN if self.mode == "bmo" else UPSTREAM_OPEN

    def _new_bug_record(self, creator: str, fields: dict[str, Any]) -> int:
        bug_id = self._next_bug
        self._next_bug += 1
        now = _now()
        status = fields.pop("status", "NEW" if self.mode == "bmo" else "CONFIRMED")
        assignee = fields.pop("assigned_to", None) or "nobody@mozilla.org"
        alias = fields.pop("alias", None)
        bug: dict[str, Any] = {
            "id": bug_id,
            "alias": ([alias] if alias else []) if self.mode == "upstream" else (alias or None),
            "summary": "",
            "status": status,
            "resolution": "",
            "is_open": status in self.open_statuses,
            "product": "Socorro",
            "component": "General",
            "version": "unspecified",
            "priority": "--" if self.mode == "bmo" else "---",
            "severity": "--" if self.mode == "bmo" else "normal",
            "assigned_to": assignee,
            "assigned_to_detail": self._detail(assignee),
            "creator": creator,
            "creator_detail": self._detail(creator),
            "qa_contact": "",
            "cc": [],
            "cc_detail": [],
            "flags": [],
            "keywords": [],
            "whiteboard": "",
            "blocks": [],
            "depends_on": [],
            "see_also": [],
            "target_milestone": "---",
            "op_sys": "Unspecified",
            "platform": "Unspecified",
            "url": "",
            "creation_time": now,
            "last_change_time": now,
            "is_confirmed": True,
            "groups": [],
            "dupe_of": None,
            "comment_count": 0,
        }
        if self.mode == "bmo":
            bug["type"] = "defect"
            bug["regressed_by"] = []
            bug["regressions"] = []
        if status not in self.open_statuses:
            bug["resolution"] = fields.pop("resolution", "FIXED")
        for key, value in fields.items():
            bug[key] = value
        self.bugs[bug_id] = bug
        self._comments[bug_id] = []
        self._history[bug_id] = []
        return bug_id

    def _detail(self, email: str) -> dict[str, Any]:
        user = self.users.get(email)
        if user is None:
            return {"id": 0, "name": email, "email": email, "real_name": "", "nick": ""}
        return {**user.public(), "email": email}

    def _add_comment_record(
        self,
        bug_id: int,
        author: str,
        text: str,
        *,
        is_private: bool = False,
        markdown: bool = False,
    ) -> dict[str, Any]:
        comments = self._comments[bug_id]
        self._next_comment += 1
        now = _now()
        comment = {
            "id": self._next_comment,
            "bug_id": bug_id,
            "count": len(comments),
            "text": text,
            "raw_text": text,
            "creator": author,
            "author": author,
            "time": now,
            "creation_time": now,
            "is_private": is_private,
            "is_markdown": markdown,
            "attachment_id": None,
            "tags": [],
        }
        comments.append(comment)
        self.bugs[bug_id]["comment_count"] = len(comments)
        return comment

    def _visible(self, bug: dict[str, Any], user: str | None) -> bool:
        if not bug["groups"]:
            return True
        if user is None:
            return False
        groups = set(self.users[user].groups)
        return bool(groups & set(bug["groups"]))

    def _lookup_bug(self, ident: str, user: str | None) -> dict[str, Any]:
        if ident.isdigit():
            bug = self.bugs.get(int(ident))
            if bug is None:
                if self.mode == "bmo":
                    raise BugzillaFault(101, f"Bug {ident} does not exist.")
                raise BugzillaFault(101, f"Bug #{ident} does not exist.")
        else:
            for candidate in self.bugs.values():
                alias = candidate["alias"]
                if alias == ident or (isinstance(alias, list) and ident in alias):
                    bug = candidate
                    break
            else:
                raise BugzillaFault(100, f"'{ident}' is not a valid bug number nor an alias.")
        if not self._visible(bug, user):
            raise BugzillaFault(
                102,
                f"You are not authorized to access bug {bug['id']}. To see this bug, you must "
                "first log in to an account with the appropriate permissions.",
            )
        return bug

    def _check_comment(self, text: Any) -> str:
        text = "" if text is None else str(text)
        if len(text) > MAX_COMMENT_LENGTH:
            raise BugzillaFault(
                114, f"Comments cannot be longer than {MAX_COMMENT_LENGTH:,} characters."
            )
        return text

    def _check_user(self, email: str) -> str:
        if email not in self.users:
            raise _no_user(email)
        return email

    # --- create
    def create_bug(self, user: str, params: dict[str, Any]) -> int:
        with self.lock:
            if self.mode == "upstream" and "type" in params:
                raise BugzillaFault(
                    53, "type is not a valid parameter for the Bugzilla::Bug::create function."
                )
            product = params.get("product") or ""
            if product not in self.products:
                raise BugzillaFault(
                    106,
                    f"Product '{product}' does not exist or you don't have access to it."
                    if product
                    else "You must select/enter a product.",
                )
            info = self.products[product]
            component = params.get("component") or ""
            if component not in info["components"]:
                raise BugzillaFault(
                    105,
                    f"There is no component named '{component}' in the '{product}' product."
                    if component
                    else "You must select/enter a component.",
                )
            summary = str(params.get("summary") or "").strip()
            if not summary:
                raise BugzillaFault(107, "You must enter a summary for this bug.")
            if self.mode == "bmo":
                bug_type = params.get("type")
                if bug_type in (None, "", "--") or bug_type not in BUG_TYPES:
                    raise BugzillaFault(
                        135,
                        "To file a new bug, you must first choose a type: defect, "
                        "enhancement or task.",
                    )
            version = params.get("version")
            if version in (None, ""):
                if self.mode == "upstream":
                    raise BugzillaFault(32000, "You must select a Version for this bug.")
                version = info["default_version"]
            if version not in info["versions"]:
                raise BugzillaFault(
                    51, f"There is no version named '{version}' in the '{product}' product."
                )
            severities = BMO_SEVERITIES if self.mode == "bmo" else UPSTREAM_SEVERITIES
            priorities = self.priorities
            severity = params.get("severity")
            if severity is not None and severity not in severities:
                raise BugzillaFault(51, f"There is no severity named '{severity}'.")
            priority = params.get("priority")
            if priority is not None and priority not in priorities:
                raise BugzillaFault(51, f"There is no priority named '{priority}'.")
            assignee = params.get("assigned_to")
            if assignee:
                self._check_user(assignee)
            description = self._check_comment(params.get("description"))
            groups = params.get("groups") or []
            for group in groups:
                if not isinstance(group, str) or not group:
                    raise BugzillaFault(51, f"There is no group named '{group}'.")
            fields: dict[str, Any] = {
                "product": product,
                "component": component,
                "summary": summary,
                "version": version,
                "groups": list(groups),
            }
            if self.mode == "bmo":
                fields["type"] = params["type"]
            if severity is not None:
                fields["severity"] = severity
            if priority is not None:
                fields["priority"] = priority
            if assignee:
                fields["assigned_to"] = assignee
            if params.get("alias"):
                fields["alias"] = params["alias"]
            for key in ("keywords", "cc", "whiteboard", "op_sys", "platform", "url"):
                if key in params:
                    fields[key] = params[key]
            bug_id = self._new_bug_record(user, fields)
            self._add_comment_record(bug_id, user, description)
            if params.get("flags"):
                try:
                    self._apply_flags(self.bugs[bug_id], user, params["flags"], {})
                except BugzillaFault:
                    del self.bugs[bug_id]
                    del self._comments[bug_id]
                    del self._history[bug_id]
                    raise
            return bug_id

    # --- update
    def update_bugs(
        self, user: str, ids: list[Any], params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        with self.lock:
            targets: list[dict[str, Any]] = []
            for ident in ids:
                bug = self._lookup_bug(str(ident), user)
                if bug not in targets:
                    targets.append(bug)
            # Validate everything on copies first, so a refused request changes nothing.
            staged = []
            for bug in targets:
                work = copy.deepcopy(bug)
                changes: dict[str, dict[str, str]] = {}
                new_comment = self._stage_update(work, user, params, changes)
                staged.append((bug, work, changes, new_comment))
            results = []
            for bug, work, changes, new_comment in staged:
                touched_flags = "flags" in params
                if new_comment is not None:
                    text, private, markdown = new_comment
                    self._add_comment_record(
                        bug["id"], user, text, is_private=private, markdown=markdown
                    )
                    if self.needinfo_clears_on_comment and not touched_flags:
                        self._clear_needinfo_of(work, user, changes)
                if changes or new_comment is not None:
                    work["last_change_time"] = _now()
                self._record_history(bug["id"], user, changes)
                work["comment_count"] = len(self._comments[bug["id"]])
                self.bugs[bug["id"]] = work
                results.append(
                    {
                        "id": work["id"],
                        "alias": work["alias"] if self.mode == "upstream" else work["alias"] or "",
                        "last_change_time": work["last_change_time"],
                        "changes": changes,
                    }
                )
            return results

    def _stage_update(
        self, bug: dict[str, Any], user: str, params: dict[str, Any], changes: dict[str, Any]
    ) -> tuple[str, bool, bool] | None:
        def change(name: str, old: Any, new: Any) -> None:
            changes[name] = {"removed": "" if old is None else str(old), "added": str(new)}

        # Status and resolution, with the workflow.
        old_status, old_res = bug["status"], bug["resolution"]
        new_status = params.get("status", old_status)
        new_res = params.get("resolution")
        open_statuses = self.open_statuses
        if new_status != old_status:
            allowed = self._allowed_transitions(old_status)
            if new_status not in allowed:
                raise BugzillaFault(
                    123,
                    f"You are not allowed to change the bug status from {old_status} to "
                    f"{new_status}.",
                )
        if new_status in open_statuses:
            if new_res:
                raise BugzillaFault(122, "You cannot set a resolution for open bugs.")
            final_res = ""
        else:
            final_res = new_res if new_res is not None else old_res
            if not final_res:
                raise BugzillaFault(
                    121, f"A valid resolution is required to mark bugs as {new_status}."
                )
            resolutions = BMO_RESOLUTIONS if self.mode == "bmo" else UPSTREAM_RESOLUTIONS
            if final_res not in resolutions:
                raise BugzillaFault(51, f"There is no resolution named '{final_res}'.")
        if new_status != old_status:
            change("status", old_status, new_status)
            bug["status"] = new_status
            bug["is_open"] = new_status in open_statuses
        if final_res != old_res:
            change("resolution", old_res, final_res)
            bug["resolution"] = final_res

        # Plain fields.
        for key in ("summary", "priority", "severity", "whiteboard", "type", "version", "url"):
            if key in params and params[key] != bug.get(key):
                if key == "type" and self.mode == "upstream":
                    raise BugzillaFault(
                        53, "type is not a valid parameter for the Bugzilla::Bug::update function."
                    )
                change(key, bug.get(key), params[key])
                bug[key] = params[key]
        if "assigned_to" in params and params["assigned_to"] != bug["assigned_to"]:
            self._check_user(params["assigned_to"])
            change("assigned_to", bug["assigned_to"], params["assigned_to"])
            bug["assigned_to"] = params["assigned_to"]
            bug["assigned_to_detail"] = self._detail(params["assigned_to"])

        # The comment.
        new_comment = None
        comment = params.get("comment")
        if comment is not None:
            if isinstance(comment, dict):
                text = comment.get("comment", comment.get("body"))
                private = bool(comment.get("is_private", False))
                markdown = bool(comment.get("is_markdown", False))
            else:
                text, private, markdown = comment, False, False
            text = self._check_comment(text)
            if text.strip():
                new_comment = (text, private, markdown)

        if "flags" in params:
            self._apply_flags(bug, user, params["flags"], changes)
        return new_comment

    def _allowed_transitions(self, status: str) -> tuple[str, ...]:
        open_statuses = self.open_statuses
        if status in open_statuses:
            reopened = ("REOPENED",) if self.mode == "bmo" else ()
            return tuple(s for s in open_statuses if s not in reopened) + ("RESOLVED",)
        reopen = ("UNCONFIRMED", "REOPENED") if self.mode == "bmo" else ("UNCONFIRMED", "CONFIRMED")
        if status == "RESOLVED":
            return reopen + ("VERIFIED",)
        if status == "VERIFIED":
            return reopen + ("RESOLVED",)
        return ()  # CLOSED: nothing in this fake's workflow leaves it either

    def _apply_flags(
        self, bug: dict[str, Any], user: str, flag_changes: Any, changes: dict[str, Any]
    ) -> None:
        if not isinstance(flag_changes, list):
            raise BugzillaFault(32000, "The flags parameter must be a list.")
        removed: list[str] = []
        added: list[str] = []

        def label(flag: dict[str, Any]) -> str:
            req = f"({flag['requestee']})" if flag.get("requestee") else ""
            return f"{flag['name']}{flag['status']}{req}"

        for item in flag_changes:
            if not isinstance(item, dict):
                raise BugzillaFault(32000, "Each flag change must be an object.")
            status = item.get("status")
            if status not in ("?", "+", "-", "X"):
                raise BugzillaFault(129, f"The flag status '{status}' is invalid.")
            requestee = item.get("requestee")
            if requestee:
                self._check_user(requestee)
                if status == "?" and not self.users[requestee].can_login:
                    # BMO's flag_requestee_disabled (a user error: code 32000, HTTP 400).
                    raise BugzillaFault(
                        32000, f"You can't ask {requestee} because that account is disabled."
                    )
                if status == "?" and not self.users[requestee].accepts_needinfo:
                    # BMO's needinfo_blocked (32000, HTTP 400).
                    raise BugzillaFault(
                        32000, f'User {requestee} is not currently accepting "needinfo" requests.'
                    )
            now = _now()
            if "id" in item:
                matches = [f for f in bug["flags"] if f["id"] == int(item["id"])]
                if not matches:
                    raise BugzillaFault(
                        32000, f"There is no flag with id {item['id']} on bug {bug['id']}."
                    )
                targets = matches
            else:
                name = item.get("name")
                type_id = item.get("type_id")
                if name is None and type_id is None:
                    raise BugzillaFault(
                        50, "A flag change needs one of the id, name or type_id parameters."
                    )
                if (name is not None and name != "needinfo") or (
                    type_id is not None and int(type_id) != NEEDINFO_TYPE_ID
                ):
                    raise BugzillaFault(51, f"There is no flag type named '{name or type_id}'.")
                existing = [f for f in bug["flags"] if f["type_id"] == NEEDINFO_TYPE_ID]
                if item.get("new") or not existing:
                    if status == "X":
                        continue
                    flag = {
                        "id": self._next_flag,
                        "name": "needinfo",
                        "type_id": NEEDINFO_TYPE_ID,
                        "status": status,
                        "setter": user,
                        "creation_date": now,
                        "modification_date": now,
                    }
                    self._next_flag += 1
                    if requestee:
                        flag["requestee"] = requestee
                    bug["flags"].append(flag)
                    added.append(label(flag))
                    continue
                if len(existing) > 1:
                    raise BugzillaFault(
                        132,
                        f"The flag '{name or 'needinfo'}' has been set multiple times. You must "
                        "specify the id value to update the flag.",
                    )
                targets = existing
            for flag in targets:
                removed.append(label(flag))
                if status == "X":
                    bug["flags"].remove(flag)
                    continue
                flag["status"] = status
                flag["setter"] = user
                flag["modification_date"] = now
                if requestee:
                    flag["requestee"] = requestee
                elif status != "?":
                    flag.pop("requestee", None)
                added.append(label(flag))
        if removed or added:
            changes["flagtypes.name"] = {"removed": ", ".join(removed), "added": ", ".join(added)}

    def _clear_needinfo_of(self, bug: dict[str, Any], user: str, changes: dict[str, Any]) -> None:
        mine = [
            f
            for f in bug["flags"]
            if f["name"] == "needinfo" and f["status"] == "?" and f.get("requestee") == user
        ]
        for flag in mine:
            bug["flags"].remove(flag)
        if mine:
            changes["flagtypes.name"] = {
                "removed": ", ".join(f"needinfo?({user})" for _ in mine),
                "added": "",
            }

    def add_comment(
        self, user: str, bug_ident: str, text: Any, *, private: bool = False, markdown: bool = False
    ) -> int:
        with self.lock:
            bug = self._lookup_bug(bug_ident, user)
            if text is None or not str(text).strip():
                raise BugzillaFault(
                    50, "The function requires a comment argument, and that argument was not set."
                )
            text = self._check_comment(text)
            comment = self._add_comment_record(
                bug["id"], user, text, is_private=private, markdown=markdown
            )
            if self.needinfo_clears_on_comment:
                changes: dict[str, Any] = {}
                self._clear_needinfo_of(bug, user, changes)
                self._record_history(bug["id"], user, changes)
            bug["last_change_time"] = _now()
            return comment["id"]

    def _record_history(self, bug_id: int, user: str, changes: dict[str, Any]) -> None:
        if not changes:
            return
        self._history[bug_id].append(
            {
                "when": _now(),
                "who": user,
                "changes": [
                    {"field_name": name, "removed": c["removed"], "added": c["added"]}
                    for name, c in changes.items()
                ],
            }
        )

    def history(self, bug_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._history[bug_id])


class ActingUser:
    """Bug changes made as another user (e.g. a requestee answering a needinfo)."""

    def __init__(self, server: FakeBugzilla, email: str) -> None:
        if email not in server.users:
            raise KeyError(email)
        self.server = server
        self.email = email

    def comment(self, bug_id: int, text: str, *, clear_needinfo: bool = True) -> None:
        """Reply with a comment and (by default) clear this user's needinfo, in one change."""
        params: dict[str, Any] = {"comment": {"comment": text}}
        if clear_needinfo:
            flags = [
                {"id": f["id"], "status": "X"}
                for f in self.server.flags(bug_id)
                if f["name"] == "needinfo"
                and f["status"] == "?"
                and f.get("requestee") == self.email
            ]
            params["flags"] = flags
        self.server.update_bugs(self.email, [bug_id], params)

    def clear_needinfo(self, bug_id: int, requestee: str | None = None) -> None:
        """Clear the needinfo addressed to `requestee` (default: this user) without a comment."""
        who = requestee or self.email
        flags = [
            {"id": f["id"], "status": "X"}
            for f in self.server.flags(bug_id)
            if f["name"] == "needinfo" and f["status"] == "?" and f.get("requestee") == who
        ]
        self.server.update_bugs(self.email, [bug_id], {"flags": flags})

    def update(self, bug_id: int, **params: Any) -> list[dict[str, Any]]:
        return self.server.update_bugs(self.email, [bug_id], params)


# ---------------------------------------------------------------------- HTTP layer
_KEY_NAMES = ("Bugzilla_api_key", "api_key")


def _filter_fields(bug: dict[str, Any], include: list[str], exclude: list[str]) -> dict[str, Any]:
    def split(values: list[str]) -> list[str]:
        return [part for value in values for part in re.split(r"[\s+,]+", value) if part]

    include, exclude = split(include), split(exclude)
    if include and not ({"_all", "_default"} & set(include)):
        bug = {k: v for k, v in bug.items() if k in include}
    return {k: v for k, v in bug.items() if k not in exclude}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeBugzilla/1.0"
    # One write per response and no Nagle delay: keep-alive requests stay fast.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet; the journal records all
        pass

    @property
    def fake(self) -> FakeBugzilla:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    def _serve(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        body_error = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body_error = True
                body = raw.decode("utf-8", "replace")

        # Authentication: header > Bugzilla_api_key > api_key (query, then JSON body).
        forms: list[tuple[str, str]] = []
        header_key = self.headers.get("X-BUGZILLA-API-KEY")
        if header_key is not None:
            forms.append(("header", header_key))
        for name in _KEY_NAMES:
            if name in query:
                forms.append((f"query:{name}", query[name][0]))
        if isinstance(body, dict):
            for name in _KEY_NAMES:
                if name in body:
                    forms.append((f"body:{name}", str(body[name])))
        usable = [(f, k) for f, k in forms if not (f == "header" and fake.mode == "upstream")]
        auth_form, key = usable[0] if usable else (None, None)
        keys = {k for _, k in forms if k}

        def redact(text: str) -> str:
            for k in keys:
                text = text.replace(k, REDACTED)
            return text

        redacted_query = {
            k: [REDACTED if k in _KEY_NAMES else v for v in vs] for k, vs in query.items()
        }
        redacted_body = body
        if isinstance(body, dict):
            redacted_body = {k: (REDACTED if k in _KEY_NAMES else v) for k, v in body.items()}
        headers = {
            k: (REDACTED if k.lower() == "x-bugzilla-api-key" else redact(v))
            for k, v in self.headers.items()
        }
        entry = JournalEntry(
            method=method,
            path=path,
            query=redacted_query,
            auth=auth_form,
            auth_forms=[f for f, _ in forms],
            user=None,
            body=redacted_body,
            headers=headers,
            key_in_url=any(k in self.path for k in keys),
            target=redact(self.path),
        )
        with fake.lock:
            fake.journal.append(entry)

        status = self._inject_fault(method, path)
        if status is not None:
            entry.status = status
            return
        if len(self.path) > MAX_TARGET_LENGTH:  # BMO's Varnish, before Bugzilla sees it
            entry.status = 414
            self._send(414, b"414 URI Too Long\n", "text/plain")
            return

        try:
            user = None
            if key is not None:
                user = fake.api_keys.get(key)
                if user is None:
                    raise BugzillaFault(
                        306,
                        "The API key you specified is invalid. Please check that you typed it "
                        "correctly.",
                    )
            entry.user = user
            if body_error:
                raise BugzillaFault(32000, "The JSON body of the request could not be parsed.")
            params: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
            for name in _KEY_NAMES:
                params.pop(name, None)
            status, data = self._route(method, path, query, params, user)
        except BugzillaFault as fault:
            status = fault.status
            data = {
                "error": True,
                "code": fault.code,
                "message": fault.message,
                "documentation": DOCUMENTATION,
            }
        entry.status = status
        try:
            self._send_json(status, data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _inject_fault(self, method: str, path: str) -> int | None:
        fake = self.fake
        chosen = None
        with fake.lock:
            for fault in fake.faults:
                if fault.remaining is not None and fault.remaining <= 0:
                    continue
                if fault.method not in ("*", method):
                    continue
                if not fnmatch.fnmatchcase(path, fault.path):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                chosen = fault
                break
        if chosen is None:
            return None
        if chosen.delay:
            time.sleep(chosen.delay)
        if chosen.status is None:
            return None
        body = chosen.body
        if body is None:
            body = {
                "error": True,
                "code": 32000 if chosen.status < 500 else -32000,
                "message": f"Injected fault: HTTP {chosen.status}",
                "documentation": DOCUMENTATION,
            }
        if isinstance(body, dict):
            payload = json.dumps(body).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body
        try:
            self._send(chosen.status, payload, chosen.content_type)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)
        return chosen.status

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        params: dict[str, Any],
        user: str | None,
    ) -> tuple[int, Any]:
        fake = self.fake
        if not path.startswith("/rest/"):
            raise BugzillaFault(32614, f"A REST API resource was not found for '{method} {path}'.")
        route = path[len("/rest") :].rstrip("/") or "/"
        not_found = BugzillaFault(
            32614, f"A REST API resource was not found for '{method} {route}'."
        )
        segments = route.strip("/").split("/")

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        if method == "GET":
            if route == "/version":
                return 200, {"version": fake.version}
            if route == "/extensions":
                if fake.mode == "bmo":
                    return 200, {
                        "extensions": {"BMO": {"version": "1.0"}, "Needinfo": {"version": "1.0"}}
                    }
                return 200, {"extensions": {}}
            if route == "/whoami":
                if fake.mode == "upstream":
                    raise not_found
                if user is None:
                    raise BugzillaFault(410, "You must log in before using this part of Bugzilla.")
                u = fake.users[user]
                return 200, {
                    **u.public(),
                    "mfa_status": False,
                    "groups": u.groups,
                    "uuid": f"bmo-who:{u.id}",
                }
            if route == "/valid_login":
                login = first("login")
                if not login:
                    raise BugzillaFault(
                        50, "The function requires a login argument, and that argument was not set."
                    )
                return 200, {"result": user is not None and user == login}
            if segments[0] == "user":
                return 200, self._get_users(segments, query, user)
            if segments[0] == "bug":
                if len(segments) == 1:
                    return 200, self._search(query, user)
                if len(segments) == 2:
                    with fake.lock:
                        bug = fake._lookup_bug(segments[1], user)
                        data = _filter_fields(
                            copy.deepcopy(bug),
                            query.get("include_fields", []),
                            query.get("exclude_fields", []),
                        )
                    return 200, {"bugs": [data], "faults": []}
                if len(segments) == 3 and segments[2] == "history":
                    with fake.lock:
                        bug = fake._lookup_bug(segments[1], user)
                        history = fake.history(bug["id"])
                    alias = bug["alias"]
                    return 200, {"bugs": [{"id": bug["id"], "alias": alias, "history": history}]}
                if len(segments) == 3 and segments[2] == "comment":
                    with fake.lock:
                        bug = fake._lookup_bug(segments[1], user)
                        comments = [
                            c
                            for c in fake.comments(bug["id"])
                            if not c["is_private"] or user is not None
                        ]
                    return 200, {"bugs": {str(bug["id"]): {"comments": comments}}, "comments": {}}
            raise not_found

        if method in ("POST", "PUT"):
            if segments[0] != "bug" or len(segments) > 3:
                raise not_found
            if user is None:
                raise BugzillaFault(410, "You must log in before using this part of Bugzilla.")
            if method == "POST" and len(segments) == 1:
                bug_id = fake.create_bug(user, params)
                return 200, {"id": bug_id}
            if method == "POST" and len(segments) == 3 and segments[2] == "comment":
                comment_id = fake.add_comment(
                    user,
                    segments[1],
                    params.get("comment"),
                    private=bool(params.get("is_private")),
                    markdown=bool(params.get("is_markdown")),
                )
                return 201, {"id": comment_id}
            if method == "PUT" and len(segments) == 2:
                ids: list[Any] = [segments[1]]
                for extra in params.pop("ids", []) or []:
                    if str(extra) not in [str(i) for i in ids]:
                        ids.append(extra)
                return 200, {"bugs": fake.update_bugs(user, ids, params)}
        raise not_found

    def _get_users(
        self, segments: list[str], query: dict[str, list[str]], user: str | None
    ) -> dict[str, Any]:
        fake = self.fake
        with fake.lock:
            found: list[User] = []
            names = list(query.get("names", []))
            ids = list(query.get("ids", []))
            if len(segments) == 2:
                (ids if segments[1].isdigit() else names).append(segments[1])
            if (ids or query.get("match")) and user is None:
                raise BugzillaFault(
                    505,
                    "Logged-out users cannot use the 'ids' or 'match' argument to this "
                    "function to access any user information.",
                )
            permissive = query.get("permissive", ["0"])[-1].lower() in ("1", "true")
            faults: list[dict[str, Any]] = []
            for name in names:
                if name not in fake.users:
                    if not permissive:
                        raise _no_user(name)
                    fault = _no_user(name)
                    faults.append(
                        {"name": name, "faultCode": fault.code, "faultString": str(fault)}
                    )
                    continue
                found.append(fake.users[name])
            for ident in ids:
                matches = [u for u in fake.users.values() if str(u.id) == str(ident)]
                if not matches:
                    raise BugzillaFault(51, f"There is no user with the id '{ident}'.")
                found.extend(matches)
            for pattern in query.get("match", []):
                found.extend(
                    u
                    for u in fake.users.values()
                    if pattern.lower() in u.email.lower() or pattern.lower() in u.real_name.lower()
                )
            return {
                "users": [u.full() if user else u.public() for u in found],
                "faults": faults,
            }

    def _search(self, query: dict[str, list[str]], user: str | None) -> dict[str, Any]:
        fake = self.fake
        known = {
            "id",
            "alias",
            "product",
            "component",
            "summary",
            "short_desc",
            "status",
            "bug_status",
            "resolution",
            "creator",
            "assigned_to",
            "limit",
            "include_fields",
            "exclude_fields",
            "permissive",
            "query_format",
            "short_desc_type",
        }
        criteria = {k: v for k, v in query.items() if k in known}
        if not set(criteria) - {"include_fields", "exclude_fields", "permissive", "limit"}:
            raise BugzillaFault(
                32000, "Searching for bugs with no criteria is not allowed on this server."
            )

        def matches(bug: dict[str, Any]) -> bool:
            if "id" in query and str(bug["id"]) not in query["id"]:
                return False
            if "alias" in query:
                alias = bug["alias"] if isinstance(bug["alias"], list) else [bug["alias"]]
                if not set(alias) & set(query["alias"]):
                    return False
            for key, field_name in (
                ("product", "product"),
                ("component", "component"),
                ("status", "status"),
                ("bug_status", "status"),
                ("resolution", "resolution"),
                ("creator", "creator"),
                ("assigned_to", "assigned_to"),
            ):
                if key in query and bug[field_name] not in query[key]:
                    return False
            summary = bug["summary"].lower()
            wanted = [v.lower() for v in query.get("summary", [])]
            if wanted and not any(v in summary for v in wanted):  # any substring, no case
                return False
            for value in query.get("short_desc", []):  # all words as substrings
                if not all(word in summary for word in value.lower().split()):
                    return False
            return fake._visible(bug, user)

        with fake.lock:
            found = [copy.deepcopy(b) for b in fake.bugs.values() if matches(b)]
        limit = query.get("limit")
        if limit and limit[0].isdigit() and int(limit[0]) > 0:
            found = found[: int(limit[0])]
        include, exclude = query.get("include_fields", []), query.get("exclude_fields", [])
        return {"bugs": [_filter_fields(b, include, exclude) for b in found]}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that gave up (timeout tests): not an error of the fake
        super().handle_error(request, client_address)


# ---------------------------------------------------------------------- pytest fixtures
def _serve(mode: str) -> Iterator[FakeBugzilla]:
    server = FakeBugzilla(mode).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_bugzilla() -> Iterator[FakeBugzilla]:
    """A fake BMO (bugzilla.mozilla.org) on 127.0.0.1."""
    yield from _serve("bmo")


@pytest.fixture
def fake_bugzilla_upstream() -> Iterator[FakeBugzilla]:
    """A fake upstream Bugzilla 5.0 on 127.0.0.1 (header auth ignored, no bug types)."""
    yield from _serve("upstream")


@pytest.fixture(params=["bmo", "upstream"])
def bugzilla_server(request: pytest.FixtureRequest) -> Iterator[FakeBugzilla]:
    """The fake Bugzilla in each mode in turn: BMO, then upstream 5.0."""
    yield from _serve(request.param)
