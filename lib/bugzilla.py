"""Our Bugzilla client: python-bugzilla (REST) with safe authentication, clear errors, dry runs.

Works with bugzilla.mozilla.org (BMO) and upstream Bugzilla 5.0/5.2, which differ:

* BMO accepts the API key in the ``X-BUGZILLA-API-KEY`` header (recommended: the key stays out of
  URLs and logs); upstream 5.0/5.2 silently ignore that header and run the request as anonymous,
  so in ``auth="auto"`` mode the client detects it and falls back to the ``Bugzilla_api_key``
  parameter.
* BMO requires a bug ``type``; upstream has no such field (code 53 if sent) and requires
  ``version``.

Every failure is a :class:`lib.errors.UserError` with one line and never the key.
``bugzilla`` and ``requests`` are imported inside functions so that importing this module is cheap.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from lib.errors import UserError

#: Where python-bugzilla keeps its per-user configuration; later files win.
BUGZILLARC_FILES = ("~/.bugzillarc", "~/.config/python-bugzilla/bugzillarc")
AUTH_MODES = ("auto", "header", "param")
BUG_TYPES = ("defect", "enhancement", "task")
MAX_COMMENT_LENGTH = 65535
MASK = "********"
#: Requests that change nothing on the server (the only ones a dry run sends).
_READ_METHODS = ("GET", "HEAD")
#: Bug ids per search request (about 11 characters each in the URL).
_IDS_PER_REQUEST = 200


def _key_into_body(kwargs: dict[str, Any]) -> None:
    """Move a ``Bugzilla_api_key`` parameter of a write from the URL into its JSON body.

    python-bugzilla puts the key in the query string of every request when it is sent as a
    parameter (upstream 5.0/5.2 accept nothing else). Bugzilla reads the parameters of a write
    from its JSON body as well, so there the key need not be in the URL (and in server access
    logs); reads have no body and keep it in the query string.
    """
    params = kwargs.get("params")
    data = kwargs.get("data")
    if not isinstance(params, dict) or "Bugzilla_api_key" not in params:
        return
    try:
        body = json.loads(data) if isinstance(data, (str, bytes)) and data else {}
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    params = dict(params)
    body["Bugzilla_api_key"] = params.pop("Bugzilla_api_key")
    kwargs["params"] = params
    kwargs["data"] = json.dumps(body)


#: Bugzilla error codes whose own message we do not need to repeat.
_CODE_INVALID_KEY = 306
_CODE_LOGIN_REQUIRED = 410
_CODE_NO_RESOURCE = 32614
_CODE_NOT_A_PARAM = 53
_CODE_NO_SUCH_VALUE = 51
_CODE_TYPE_REQUIRED = 135


# ---------------------------------------------------------------------- API key
def api_key_from_environment(url: str) -> str | None:
    """The API key for `url`: BUGZILLA_API_KEY, else python-bugzilla's bugzillarc files.

    In a bugzillarc the section is the URL's host with its port (``[bugzilla.mozilla.org]``,
    ``[127.0.0.1:8000]``); a section containing ``/`` matches when it is part of the URL.
    """
    key = os.environ.get("BUGZILLA_API_KEY", "").strip()
    if key:
        return _checked_key(key, "BUGZILLA_API_KEY")
    netloc = _host_port(url)
    url = public_url(url)
    found: str | None = None
    for name in BUGZILLARC_FILES:
        path = Path(os.path.expanduser(name))
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot read {path}: {first}") from None
        for section in parser.sections():
            matches = section == netloc or ("/" in section and section in url)
            if matches and parser.get(section, "api_key", fallback="").strip():
                found = _checked_key(parser.get(section, "api_key").strip(), str(path))
    return found


def _checked_key(key: str, source: str) -> str:
    """`key` if it can be an API key (printable ASCII, no spaces); else a UserError naming where
    it came from, never the key itself (it could not even be sent in a header)."""
    if not all("!" <= ch <= "~" for ch in key):
        raise UserError(
            f"the Bugzilla API key from {source} contains spaces, control characters or "
            "non-ASCII characters; an API key has none (copy it again from Bugzilla's "
            "Preferences > API Keys)"
        )
    return key


# ---------------------------------------------------------------------- URLs
_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")


def public_url(url: str) -> str:
    """`url` without its ``user:password@`` part: the only form that may be printed."""
    return _USERINFO.sub("", str(url))


def url_credentials(url: str) -> tuple[str, str] | None:
    """The (user, password) of a ``https://user:password@host/`` URL, decoded; else None."""
    parts = urlsplit(url.strip())
    if parts.username is None and parts.password is None:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def rest_base(url: str) -> str:
    """Normalise a configured URL to the REST base python-bugzilla needs (``.../rest/``).

    Any ``user:password@`` is dropped (the client sends it as HTTP basic auth instead).
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number 0-65535)
    except ValueError as exc:
        raise UserError(f"bugzilla.url {public_url(url)!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise UserError(
            f"bugzilla.url must be an http(s) URL such as https://bugzilla.mozilla.org/rest/, "
            f"not {public_url(url)!r}"
        )
    path = parts.path
    if re.search(r"/rest(\.cgi)?/?$", path):
        path = path if path.endswith("/") else path + "/"
    else:
        path = path.rstrip("/") + "/rest/"
    return urlunsplit((parts.scheme, _host_port(url), path, "", ""))


def _host_port(url: str) -> str:
    """The netloc of `url` without user:password."""
    return urlsplit(url).netloc.rpartition("@")[2]


def web_base(rest_url: str) -> str:
    """The web root of the Bugzilla whose REST base is `rest_url` (no trailing slash).

    A `rest_url` that is no http(s) URL is refused (links to it would lead nowhere)."""
    rest_base(rest_url)
    parts = urlsplit(rest_url.strip())
    path = re.sub(r"/rest(\.cgi)?/?$", "", parts.path).rstrip("/")
    return urlunsplit((parts.scheme, _host_port(rest_url.strip()), path, "", ""))


def enter_bug_url(
    rest_url: str,
    *,
    product: str,
    component: str,
    summary: str,
    description: str,
    priority: str | None = None,
    bug_type: str = "task",
    **extra: str,
) -> str:
    """A prefilled ``enter_bug.cgi`` link: opening it shows the bug form ready to submit."""
    params: dict[str, str] = {
        "format": "__standard__",
        "product": product,
        "component": component,
        "short_desc": summary,
        "comment": description,
    }
    if bug_type:
        params["bug_type"] = bug_type
    if priority:
        params["priority"] = priority
    for key, value in extra.items():
        if value not in (None, ""):
            params[key] = str(value)
    return f"{web_base(rest_url)}/enter_bug.cgi?{urlencode(params, quote_via=quote)}"


# ---------------------------------------------------------------------- log redaction
class _RedactSecrets(logging.Filter):
    """Scrubs API keys from log records (urllib3 logs request lines with their query string)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = message
        for secret in self.secrets:
            cleaned = cleaned.replace(secret, MASK)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_REDACTOR = _RedactSecrets()
_REDACTED_LOGGERS = ("urllib3.connectionpool", "bugzilla", "bugzilla._backendrest", "requests")


def _protect_logs(secret: str) -> None:
    _REDACTOR.secrets.add(secret)
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------- the client
class BugzillaClient:
    """A Bugzilla REST client for the tasks. Connects lazily, on the first call."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        auth: str = "auto",
        timeout: float = 60,
        dry_run: bool = False,
    ) -> None:
        if auth not in AUTH_MODES:
            raise UserError(f"bugzilla.auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            raise UserError(
                f"bugzilla.timeout must be a number of seconds, not {timeout!r}"
            ) from None
        if not 0 < self.timeout < 86400:  # also nan and inf
            raise UserError(
                f"bugzilla.timeout must be a positive number of seconds below a day, "
                f"not {timeout!r}"
            )
        #: The REST base and web root, never with the user:password of bugzilla.url...
        self.url = rest_base(url)
        self.web_url = web_base(self.url)
        #: ...which goes as HTTP basic auth instead (e.g. a Bugzilla behind a proxy login).
        self._basic_auth = url_credentials(url)
        self.api_key = (api_key or "").strip() or None
        self.auth = auth
        self.dry_run = dry_run
        #: How the key is actually sent once connected: "header", "param" or None (anonymous).
        self.auth_used: str | None = None
        self._bz: Any = None
        self._whoami: str | None = None
        self._whoami_known = False
        #: The method of the latest request (a timeout after a write may have applied it).
        self._last_method: str | None = None
        if self.api_key:
            _protect_logs(self.api_key)
        if self._basic_auth and self._basic_auth[1]:
            _protect_logs(self._basic_auth[1])

    # ------------------------------------------------------------- connection
    def _session(self, header_key: str | None) -> Any:
        """The requests session every request of this client goes through.

        It applies bugzilla.timeout, remembers the method (for timeout messages) and, in a dry
        run, prints each read it performs and refuses to send anything else.
        """
        import requests

        client = self

        class _ClientSession(requests.Session):
            def request(self, method: str, url: str, **kwargs: Any) -> Any:
                method = method.upper()
                kwargs["timeout"] = client.timeout
                client._last_method = method
                if client.dry_run:
                    shown = client._shown_url(method, url, kwargs.get("params"))
                    if method not in _READ_METHODS:
                        # Writes are printed by _would_send and never reach the session.
                        raise UserError(f"a dry run must not send {method} {shown}; nothing sent")
                    from lib.console import info

                    info(f"dry-run: runs: {method} {shown}")
                if method not in _READ_METHODS:
                    _key_into_body(kwargs)
                return super().request(method, url, **kwargs)

            def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
                # requests drops only `Authorization` when a redirect leaves the host; the API
                # key (header, query or a resent body) would follow. Refuse such a redirect.
                if self.should_strip_auth(response.request.url, prepared_request.url):
                    old, new = urlsplit(response.request.url), urlsplit(prepared_request.url)
                    raise UserError(
                        f"Bugzilla at {old.scheme}://{old.hostname} redirected to another host "
                        f"({new.scheme}://{new.hostname}); nothing was sent there (it would "
                        f"carry the API key): set bugzilla.url to the REST base it should use"
                    )
                super().rebuild_auth(prepared_request, response)

        session = _ClientSession()
        if self._basic_auth:
            session.auth = self._basic_auth
        if header_key:
            session.headers["X-BUGZILLA-API-KEY"] = header_key
        return session

    def _make(self, mode: str | None) -> Any:
        import bugzilla

        kwargs: dict[str, Any] = {"force_rest": True, "use_creds": False}
        if mode == "param":
            kwargs["api_key"] = self.api_key
            kwargs["requests_session"] = self._session(None)
        else:
            kwargs["requests_session"] = self._session(self.api_key if mode == "header" else None)
        return bugzilla.Bugzilla(self.url, **kwargs)

    def _connect(self) -> Any:
        if self._bz is not None:
            return self._bz
        if not self.api_key:
            self._bz = self._guard(lambda: self._make(None))
            self.auth_used = None
            return self._bz
        if self.auth == "param":
            self._bz = self._guard(lambda: self._make("param"))
            self.auth_used = "param"
            return self._bz
        bz = self._guard(lambda: self._make("header"))
        if self.auth == "header" or self._header_honoured(bz):
            self._bz, self.auth_used = bz, "header"
            return bz
        # The server ran us as anonymous although the header carried a key (upstream 5.0/5.2).
        self._bz = self._guard(lambda: self._make("param"))
        self.auth_used = "param"
        return self._bz

    def _header_honoured(self, bz: Any) -> bool:
        """Whether the server authenticated us from the header (BMO) or ignored it (upstream)."""
        from bugzilla import BugzillaError

        try:
            me = self._guard(lambda: bz._backend._get("/whoami"), allow=(32614, 410, 404))
        except _Allowed as allowed:
            if allowed.code == _CODE_LOGIN_REQUIRED:
                return False
            me = None
        if me is not None:
            self._whoami = me.get("name")
            self._whoami_known = True
            return True
        try:
            bz._backend.user_get({"ids": [1]})
            return True
        except BugzillaError as exc:
            if BugzillaError.get_bugzilla_error_code(exc) in (505, 32000):
                return False
            raise self._translate(exc, {}) from None
        except Exception as exc:  # every failure becomes a UserError
            raise self._translate(exc, {}) from None

    # ------------------------------------------------------------- error handling
    def _guard(
        self,
        call: Callable[[], Any],
        context: dict[str, Any] | None = None,
        allow: Iterable[int] = (),
    ) -> Any:
        try:
            return call()
        except UserError:
            raise
        except Exception as exc:  # every failure becomes a UserError
            code = self._code_of(exc)
            if code is not None and code in tuple(allow):
                raise _Allowed(code, self._scrub(str(exc))) from None
            raise self._translate(exc, context or {}) from None

    def _code_of(self, exc: BaseException) -> int | None:
        from bugzilla import BugzillaError

        if isinstance(exc, BugzillaError):
            code = BugzillaError.get_bugzilla_error_code(exc)
            return int(code) if code is not None else None
        response = getattr(exc, "response", None)
        if response is not None:
            if response.status_code == 404 and not self._json_error(response):
                return 404
            error = self._json_error(response)
            if error and isinstance(error.get("code"), int):
                return error["code"]
        return None

    @staticmethod
    def _json_error(response: Any) -> dict[str, Any] | None:
        try:
            data = json.loads(response.text)
        except (ValueError, TypeError):
            return None
        return data if isinstance(data, dict) and data.get("error") else None

    def _scrub(self, text: str) -> str:
        text = public_url(_one_line(text))
        if self.api_key:
            text = text.replace(self.api_key, MASK)
        if self._basic_auth and self._basic_auth[1]:
            text = text.replace(self._basic_auth[1], MASK)
        text = re.sub(r"(Bugzilla_api_key|api_key)=[^&\s]*", r"\1=" + MASK, text)
        return text

    def _translate(self, exc: BaseException, context: dict[str, Any]) -> UserError:
        import requests
        from bugzilla import BugzillaError

        where = self.web_url
        if isinstance(exc, requests.exceptions.Timeout):
            unit = "second" if self.timeout == 1 else "seconds"
            late = f"Bugzilla at {where} did not answer within {self.timeout:g} {unit}"
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                return UserError(
                    f"{late} (bugzilla.timeout) to a connection attempt, so this request was "
                    f"not sent; rerun when it is reachable"
                )
            if self._last_method not in _READ_METHODS:
                return UserError(
                    f"{late} (bugzilla.timeout) to a {self._last_method} that files or changes "
                    f"a bug: the change may or may not have been applied; rerunning is safe, "
                    f"since each task checks the bug before changing it"
                )
            return UserError(
                f"{late} (bugzilla.timeout) to a read request; try again, or raise bugzilla.timeout"
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return UserError(
                f"cannot reach Bugzilla at {where} (connection failed); check bugzilla.url "
                f"and your network"
            )
        if isinstance(exc, BugzillaError) and BugzillaError.get_bugzilla_error_code(exc):
            code = int(BugzillaError.get_bugzilla_error_code(exc))
            message = re.sub(r"\s*\(code=-?\d+\)$", "", str(exc))
            return self._coded_error(code, self._scrub(message), context)
        response = getattr(exc, "response", None)
        if isinstance(exc, requests.exceptions.HTTPError) and response is not None:
            status = response.status_code
            reason = _one_line(response.reason or "")
            error = self._json_error(response)
            if status >= 500:
                detail = (
                    f": {self._scrub(error['message'])}" if error and "message" in error else ""
                )
                return UserError(
                    f"Bugzilla at {where} failed with HTTP {status} {reason}{detail}; "
                    f"try again later"
                )
            if error and isinstance(error.get("code"), int):
                return self._coded_error(error["code"], self._scrub(error["message"]), context)
            return UserError(f"Bugzilla at {where} answered HTTP {status} {reason}".rstrip())
        if isinstance(exc, requests.exceptions.RequestException):
            return UserError(f"request to Bugzilla at {where} failed: {type(exc).__name__}")
        if isinstance(exc, ValueError | KeyError | TypeError | IndexError):
            return UserError(
                f"Bugzilla at {where} sent an answer this tool cannot read "
                f"({type(exc).__name__}); is bugzilla.url a Bugzilla REST base (.../rest/)?"
            )
        return UserError(f"Bugzilla request failed: {type(exc).__name__}: {self._scrub(str(exc))}")

    def _coded_error(self, code: int, message: str, context: dict[str, Any]) -> UserError:
        if code == _CODE_INVALID_KEY:
            return UserError(
                "the Bugzilla API key is invalid (code 306); check BUGZILLA_API_KEY or the "
                "api_key in your bugzillarc"
            )
        if code == _CODE_LOGIN_REQUIRED:
            if not self.api_key:
                how = "set BUGZILLA_API_KEY or put api_key in your bugzillarc"
            elif self.auth_used == "header":
                how = (
                    "the server ignored the X-BUGZILLA-API-KEY header (upstream Bugzilla 5.0 "
                    "and 5.2 do); set bugzilla.auth to auto or param"
                )
            else:
                how = "the server did not accept the API key for this"
            return UserError(f"Bugzilla requires a login for this (code 410): {how}")
        if code == 106 and "product" in context:
            return UserError(
                f"unknown Bugzilla product {context['product']!r}, or your account may not use "
                f"it (code 106)"
            )
        if code == 105 and "component" in context:
            return UserError(
                f"unknown component {context['component']!r} in Bugzilla product "
                f"{context.get('product')!r} (code 105)"
            )
        if code == 51:
            named = re.search(r"no user named '([^']*)'", message)
            if named:
                return UserError(f"unknown Bugzilla user {named.group(1)!r} (code 51)")
            return UserError(f"Bugzilla: {message} (code 51)")
        if code == 101:
            bug = context.get("bug", "")
            return UserError(f"Bugzilla bug {bug} does not exist (code 101)".replace("  ", " "))
        if code == 102:
            bug = context.get("bug", "")
            if not self.api_key:
                return UserError(
                    f"bug {bug} is not public: set BUGZILLA_API_KEY (or api_key in your "
                    f"bugzillarc) to read it (code 102)"
                )
            return UserError(f"your Bugzilla account may not see bug {bug} (code 102)")
        if code == 114:
            return UserError(f"the comment is too long for Bugzilla (code 114): {message}")
        if code == _CODE_NO_RESOURCE:
            return UserError(
                f"Bugzilla at {self.web_url} has no such REST resource (code 32614); "
                f"bugzilla.url must be the REST base, e.g. https://bugzilla.mozilla.org/rest/"
            )
        return UserError(f"Bugzilla refused the request: {message} (code {code})")

    # ------------------------------------------------------------- dry run
    def _shown_url(self, method: str, url: str, params: Any) -> str:
        """The request's full URL as it may be printed: no user:password, the key masked."""
        import requests

        try:
            full = requests.Request(method, url, params=params or {}).prepare().url or url
        except Exception:  # an unpreparable URL is printed as given
            full = url
        return self._scrub(full)

    def _dry_connect(self) -> None:
        """Connect as a real run would (its reads are shown); a failure is only reported."""
        if self._bz is not None:
            return
        try:
            self._connect()
        except UserError as exc:
            from lib.console import info

            info(f"dry-run: note: a real run would stop here: {exc}")

    def _would_send(self, method: str, path: str, body: dict[str, Any]) -> None:
        """Print a write a real run would send: method, URL, JSON body (the key masked)."""
        text = json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True)
        if self.api_key:
            text = text.replace(self.api_key, MASK)
        url = self._scrub(self.url.rstrip("/") + path)
        if self.auth_used == "param":
            url += f"?Bugzilla_api_key={MASK}"
        print(f"dry-run: would send: {method} {url}\n{text}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------- reads
    def bug_url(self, bug_id: int) -> str:
        return f"{self.web_url}/show_bug.cgi?id={int(bug_id)}"

    @property
    def is_bmo(self) -> bool:
        """BMO reports a date-based version (20260820.1); upstream reports 5.0.4, 5.2..."""
        bz = self._connect()
        return int(bz.bz_ver_major) >= 1000

    @property
    def has_bug_types(self) -> bool:
        """Whether new bugs need a `type` (BMO) or the field does not exist (upstream)."""
        return self.is_bmo

    def whoami(self) -> str | None:
        """The email of the API key's user; None when anonymous or the server cannot say."""
        if self._whoami_known:
            return self._whoami
        bz = self._connect()
        self._whoami_known = True
        if not self.api_key:
            return None
        try:
            me = self._guard(lambda: bz._backend._get("/whoami"), allow=(32614, 404))
            self._whoami = me.get("name")
        except _Allowed:
            self._whoami = None
        return self._whoami

    def is_key_of(self, email: str) -> bool:
        """Whether the API key belongs to `email` (/whoami on BMO, /valid_login upstream)."""
        if not self.api_key:
            return False
        me = self.whoami()
        if me is not None:
            return me.lower() == email.strip().lower()
        bz = self._connect()
        answer = self._guard(lambda: bz._backend._get("/valid_login", {"login": email.strip()}))
        return bool(answer.get("result")) if isinstance(answer, dict) else bool(answer)

    def find_bugs(self, product: str, summary: str, *, open_only: bool = False) -> list[dict]:
        """Bugs of `product` whose summary is exactly `summary` (the server search is broader)."""
        bz = self._connect()
        query = {"product": [product], "summary": summary}
        bugs = self._guard(lambda: bz.query(query), {"product": product})
        found = [self._bug_dict(b.get_raw_data()) for b in bugs]
        found = [b for b in found if b.get("summary") == summary]
        if open_only:
            found = [b for b in found if b.get("is_open")]
        return sorted(found, key=lambda b: b["id"])

    def get_bug(self, bug_id: int) -> dict:
        bug_id = int(bug_id)
        bz = self._connect()
        bug = self._guard(lambda: bz.getbug(bug_id), {"bug": bug_id})
        return self._bug_dict(bug.get_raw_data())

    def get_bugs(self, ids: Iterable[int]) -> list[dict]:
        """The bugs with these ids, in id order; ids that do not exist are left out."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return []
        bz = self._connect()
        found: list[dict] = []
        # Chunks keep each request line far below BMO's 8 KiB limit (plain-text 414 beyond).
        for start in range(0, len(wanted), _IDS_PER_REQUEST):
            chunk = wanted[start : start + _IDS_PER_REQUEST]
            bugs = self._guard(lambda chunk=chunk: bz.getbugs(chunk), {})
            found.extend(self._bug_dict(b.get_raw_data()) for b in bugs if b is not None)
        return sorted(found, key=lambda b: b["id"])

    def _bug_dict(self, raw: dict[str, Any]) -> dict[str, Any]:
        bug = dict(raw)
        bug["id"] = int(bug["id"])
        bug.setdefault("resolution", "")
        bug.setdefault("flags", [])
        if "is_open" not in bug and "status" in bug:
            bug["is_open"] = not bug.get("resolution")
        bug["url"] = self.bug_url(bug["id"])
        return bug

    def comments(self, bug_id: int) -> list[dict]:
        bug_id = int(bug_id)
        bz = self._connect()
        data = self._guard(lambda: bz.get_comments([bug_id]), {"bug": bug_id})
        try:
            return list(data["bugs"][str(bug_id)]["comments"])
        except (KeyError, TypeError):
            raise UserError(f"Bugzilla sent no comments for bug {bug_id}") from None

    def history(self, bug_id: int) -> list[dict]:
        """The bug's change history: [{"when", "who", "changes": [{"field_name", ...}]}]."""
        bug_id = int(bug_id)
        bz = self._connect()
        data = self._guard(lambda: bz.bugs_history_raw([bug_id]), {"bug": bug_id})
        for bug in data.get("bugs", []):
            if int(bug.get("id", -1)) == bug_id:
                return list(bug.get("history", []))
        return []

    def user_exists(self, email: str) -> bool:
        bz = self._connect()
        try:
            self._guard(lambda: bz._backend.user_get({"names": [email]}), allow=(51,))
        except _Allowed:
            return False
        return True

    def accounts_unable_to_answer(self, emails: Iterable[str]) -> dict[str, str]:
        """Of `emails`, those Bugzilla would refuse as needinfo requestees: email -> reason
        ("disabled" when the account cannot log in, "unknown" when there is no such user).

        BMO refuses a whole update whose flags ask a disabled account."""
        wanted = sorted({e for e in emails if e})
        if not wanted:
            return {}
        bz = self._connect()
        answer = self._guard(lambda: bz._backend.user_get({"names": wanted, "permissive": 1}), {})
        found = {
            str(u.get("name") or u.get("email") or "").lower(): u
            for u in (answer or {}).get("users", [])
        }
        refused: dict[str, str] = {}
        for email in wanted:
            user = found.get(email.lower())
            if user is None:
                refused[email] = "unknown"
            elif user.get("can_login") is False:
                refused[email] = "disabled"
        return refused

    def pending_needinfos(self, bug: dict[str, Any]) -> list[dict[str, Any]]:
        """The bug's needinfo flags still waiting for an answer."""
        return [
            f
            for f in bug.get("flags", [])
            if f.get("name") == "needinfo" and f.get("status") == "?"
        ]

    # ------------------------------------------------------------- writes
    def create_bug(
        self,
        *,
        product: str,
        component: str,
        summary: str,
        description: str,
        priority: str | None = None,
        assignee: str | None = None,
        bug_type: str = "task",
        groups: list[str] | None = None,
        version: str | None = None,
    ) -> int:
        """File a bug and return its id (0 in a dry run)."""
        if bug_type not in BUG_TYPES:
            raise UserError(f"bug type must be one of {', '.join(BUG_TYPES)}, not {bug_type!r}")
        self._check_comment(description)
        params: dict[str, Any] = {
            "product": product,
            "component": component,
            "summary": summary,
            "description": description,
        }
        if priority:
            params["priority"] = priority
        if assignee:
            params["assigned_to"] = assignee
        if groups:
            params["groups"] = list(groups)
        if version:
            params["version"] = version
        with_type = self.has_bug_types
        context = {"product": product, "component": component}

        def body(typed: bool) -> dict[str, Any]:
            data = dict(params)
            if typed:
                data["type"] = bug_type
            else:
                data.setdefault("version", "unspecified")
            return data

        if self.dry_run:
            self._would_send("POST", "/bug", body(with_type))
            return 0
        bz = self._connect()
        typed, type_switched = with_type, False
        # At most three attempts: one type switch and one retry without the priority.
        for _attempt in range(3):
            try:
                created = self._guard(
                    lambda typed=typed: bz.createbug(body(typed)),
                    context,
                    allow=(_CODE_NOT_A_PARAM, _CODE_TYPE_REQUIRED, _CODE_NO_SUCH_VALUE),
                )
                return int(created.bug_id)
            except _Allowed as allowed:
                message = re.sub(r"\s*\(code=-?\d+\)$", "", allowed.message)
                if allowed.code == _CODE_NO_SUCH_VALUE:
                    if "priority" in params and re.search(r"\bpriority\b", message, re.I):
                        # Upstream's stock priorities are Highest..Lowest, not P1..P5.
                        from lib.console import info

                        info(
                            f"note: this Bugzilla has no priority {params.pop('priority')!r}; "
                            f"the bug gets the server's default priority"
                        )
                        continue
                    raise self._coded_error(allowed.code, message, context) from None
                # The server disagrees about bug types: 53 = "type" unknown, 135 = "type" required.
                if type_switched or (allowed.code == _CODE_NOT_A_PARAM) != typed:
                    raise UserError(
                        f"Bugzilla refused the request: {message} (code {allowed.code})"
                    ) from None
                typed, type_switched = not typed, True
        raise UserError("Bugzilla refused to file the bug after three attempts")

    def _check_comment(self, text: str) -> None:
        if len(text) > MAX_COMMENT_LENGTH:
            raise UserError(
                f"the text is {len(text):,} characters long; Bugzilla accepts at most "
                f"{MAX_COMMENT_LENGTH:,} in a comment"
            )

    def update_bug(self, bug_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Send one PUT /bug/{id} with `changes`; returns the server's answer ({} in a dry run)."""
        bug_id = int(bug_id)
        body = dict(changes)
        body["ids"] = [bug_id]
        if self.dry_run:
            self._dry_connect()
            self._would_send("PUT", f"/bug/{bug_id}", body)
            return {}
        bz = self._connect()
        return self._guard(lambda: bz.update_bugs([bug_id], dict(changes)), {"bug": bug_id})

    def add_comment(
        self,
        bug_id: int,
        text: str,
        *,
        needinfo: Iterable[str] = (),
        markdown: bool = True,
    ) -> None:
        """Post one comment, with one new needinfo flag per requestee, in a single change."""
        self._check_comment(text)
        comment: dict[str, Any] = {"comment": text}
        if markdown and self._markdown_supported():
            comment["is_markdown"] = True
        changes: dict[str, Any] = {"comment": comment}
        requestees = list(dict.fromkeys(needinfo))
        if requestees:
            changes["flags"] = [
                {"name": "needinfo", "status": "?", "requestee": who, "new": True}
                for who in requestees
            ]
        self.update_bug(bug_id, changes)

    def _markdown_supported(self) -> bool:
        if self.dry_run and self._bz is None:
            try:
                return self.is_bmo
            except UserError:
                return True
        return self.is_bmo

    def clear_needinfo(
        self, bug_id: int, requestee: str | None = None, *, comment: str | None = None
    ) -> int:
        """Clear the pending needinfo flags (of `requestee`, or all); returns how many."""
        bug = self.get_bug(bug_id)
        flags = [
            {"id": f["id"], "status": "X"}
            for f in self.pending_needinfos(bug)
            if requestee is None or f.get("requestee") == requestee
        ]
        if not flags and not comment:
            return 0
        changes: dict[str, Any] = {"flags": flags}
        if comment:
            self._check_comment(comment)
            changes["comment"] = {"comment": comment}
        self.update_bug(bug_id, changes)
        return len(flags)

    def resolve_fixed(self, bug_id: int, comment: str) -> None:
        """Mark the bug RESOLVED FIXED with a comment (never CLOSED: BMO has no way into it)."""
        self._check_comment(comment)
        self.update_bug(
            bug_id,
            {"status": "RESOLVED", "resolution": "FIXED", "comment": {"comment": comment}},
        )


class _Allowed(Exception):
    """An expected Bugzilla error code, handled by the caller."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def client_from_config(
    c: Any, *, dry_run: bool = False, api_key: str | None = None
) -> BugzillaClient:
    """The client for the configured Bugzilla (bugzilla.url/auth/timeout) and the user's key."""
    from lib.settings import setting, text_setting

    url = text_setting(c, "bugzilla.url")
    key = api_key if api_key is not None else api_key_from_environment(url)
    return BugzillaClient(
        url,
        key,
        auth=text_setting(c, "bugzilla.auth"),
        timeout=setting(c, "bugzilla.timeout"),
        dry_run=dry_run,
    )
