"""A fake Crash Stats server: Super Search and Reprocessing over HTTP on 127.0.0.1.

It follows the real API's shapes (socorro.md section 2): `GET /api/SuperSearch/` with filters
(`product`, `signature` with the `=`/`~`/`!`/`$` operators, `date` with `>=`/`>`/`<`/`<=`),
`_columns`, paging (`_results_number` <= 1,000; `_results_offset + _results_number` <= 10,000,
else 400) and `total`; `POST /api/Reprocessing/` with repeated `crash_ids` form fields, the
`Auth-Token` header, the Reprocess Crashes permission (403), id and ruleset validation (400).

Faults to inject: a rate limit answered with 429 and `Retry-After`; a fraction of requests
answered with 500, dropped connections (before or after the ids were accepted) or slow answers;
and a gate that holds one request in flight so a test can kill the client at that moment.
Every request is logged (method, path, query, headers, body) so tests can look for secrets.

Run it alone for benchmarks: `python -m tests.fake_crashstats --crashes 50000 --rate 600`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

CRASH_ID_RE = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{6}[0-9]{6}$")
VALID_RULESETS = ("default", "regenerate_signature")
REPROCESS_PERMISSION = "crashstats.reprocess_crashes"
GOOD_TOKEN = "fake-reprocess-token-0123456789abcdef"
READONLY_TOKEN = "fake-readonly-token-fedcba9876543210"

#: The signature most tests search for (it has a `|` like real signatures).
SIGNATURE = "some | signature"


@dataclass(frozen=True)
class Crash:
    uuid: str
    date: dt.datetime
    signature: str
    product: str


def make_crash_id(rng: random.Random, when: dt.datetime) -> str:
    digits = f"{rng.getrandbits(104):026x}"
    return (
        f"{digits[0:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:26]}{when:%y%m%d}"
    )


def generate_crashes(
    count: int,
    *,
    signature: str = SIGNATURE,
    product: str = "Firefox",
    start: dt.datetime = dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    days: float = 3.0,
    seed: int = 4,
) -> list[Crash]:
    """`count` crashes with random ids spread evenly at random over `days` from `start`."""
    rng = random.Random(f"{seed}-{signature}-{product}-{count}")
    span = days * 86_400_000
    crashes = []
    for _ in range(count):
        when = start + dt.timedelta(milliseconds=int(rng.random() * span))
        crashes.append(Crash(make_crash_id(rng, when), when, signature, product))
    return crashes


def standard_dataset(matching: int = 25_000) -> list[Crash]:
    """`matching` Firefox crashes with SIGNATURE plus look-alikes that must not match."""
    return (
        generate_crashes(matching)
        + generate_crashes(700, signature="some | signature | other")
        + generate_crashes(600, signature="unrelated::crash")
        + generate_crashes(500, product="Fenix")
    )


def _parse_when(text: str) -> tuple[dt.datetime, bool]:
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), True
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when, False


class BadArgument(Exception):
    pass


@dataclass
class Logged:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    status: int = 0


@dataclass
class FakeCrashStats:
    """The server's state and knobs; tests change the knobs while it runs."""

    crashes: list[Crash] = field(default_factory=list)
    tokens: dict[str, set[str]] = field(
        default_factory=lambda: {GOOD_TOKEN: {REPROCESS_PERMISSION}, READONLY_TOKEN: set()}
    )
    # Faults
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("500", "drop", "drop_after", "slow")
    fault_paths: tuple[str, ...] = ("/api/Reprocessing/", "/api/SuperSearch/")
    slow_seconds: float = 0.2
    seed: int = 7
    # Rate limit: token bucket of `rate_per_minute` with `burst` tokens (None: no limit).
    rate_per_minute: float | None = None
    burst: int | None = None
    #: Send Retry-After as whole seconds (HTTP standard) or with a fraction (fast tests).
    retry_after_whole_seconds: bool = True
    #: Hold the Nth Reprocessing request (1-based) until `release` is set.
    hold_request: int | None = None
    keep_bodies: bool = True
    #: Ids the server refuses with 400 although they look valid (stricter server-side checks).
    reject_ids: set[str] = field(default_factory=set)
    # Results
    accepted: Counter = field(default_factory=Counter)
    accepted_rulesets: Counter = field(default_factory=Counter)
    reprocess_requests: int = 0
    log: list[Logged] = field(default_factory=list)
    faults_injected: Counter = field(default_factory=Counter)
    rate_limited: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._tokens_left = 0.0
        self._bucket_time: float | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self._index()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- data -------------------------------------------------------------------------
    def _index(self) -> None:
        self.crashes = sorted(self.crashes, key=lambda crash: (crash.date, crash.uuid))
        self._cache: dict[tuple, tuple[list[Crash], list[dt.datetime]]] = {}

    def set_crashes(self, crashes: list[Crash]) -> None:
        with self._lock:
            self.crashes = crashes
            self._index()

    def matching(self, product: str | None = None, signature: str | None = None) -> list[Crash]:
        """The crashes a search for this product/exact signature should return (any date)."""
        return [
            crash
            for crash in self.crashes
            if (product is None or crash.product == product)
            and (signature is None or crash.signature == signature)
        ]

    # --- lifecycle --------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeCrashStats:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- results ----------------------------------------------------------------------
    @property
    def distinct_accepted(self) -> int:
        return len(self.accepted)

    @property
    def resent(self) -> int:
        """Ids accepted more than once (each extra acceptance counted)."""
        return sum(count - 1 for count in self.accepted.values() if count > 1)

    def log_text(self) -> str:
        """Everything the server was sent, for secret scans."""
        return "\n".join(
            f"{r.method} {r.path}?{r.query}\n{r.body}\n"
            + "\n".join(f"{k}: {v}" for k, v in r.headers.items() if k.lower() != "auth-token")
            for r in self.log
        )

    # --- behaviour --------------------------------------------------------------------
    def take_rate_token(self) -> float | None:
        """None when the request may pass, else seconds until it could."""
        if not self.rate_per_minute:
            return None
        per_second = self.rate_per_minute / 60.0
        burst = self.burst or max(1, int(per_second))
        with self._lock:
            now = time.monotonic()
            if self._bucket_time is None:
                self._tokens_left = float(burst)
            else:
                elapsed = now - self._bucket_time
                self._tokens_left = min(burst, self._tokens_left + elapsed * per_second)
            self._bucket_time = now
            if self._tokens_left >= 1:
                self._tokens_left -= 1
                return None
            self.rate_limited += 1
            return (1 - self._tokens_left) / per_second

    def pick_fault(self, path: str) -> str | None:
        if self.fault_rate <= 0 or path not in self.fault_paths:
            return None
        with self._lock:
            if self._rng.random() >= self.fault_rate:
                return None
            kind = self._rng.choice(self.fault_kinds)
            self.faults_injected[kind] += 1
            return kind

    def search(self, query: list[tuple[str, str]]) -> dict:
        products: list[str] = []
        signatures: list[str] = []
        dates: list[str] = []
        meta: dict[str, list[str]] = {}
        for key, value in query:
            if key == "product":
                products.append(value)
            elif key == "signature":
                signatures.append(value)
            elif key == "date":
                dates.append(value)
            elif key.startswith("_"):
                meta.setdefault(key, []).append(value)
        try:
            number = int(meta.get("_results_number", ["100"])[0])
            offset = int(meta.get("_results_offset", ["0"])[0])
        except ValueError:
            raise BadArgument("_results_number and _results_offset must be integers") from None
        if number < 0 or number > 1000:
            raise BadArgument("_results_number must be between 0 and 1000")
        if offset < 0:
            raise BadArgument("_results_offset must not be negative")
        if offset + number > 10_000:
            raise BadArgument(
                "_results_offset + _results_number must be less than or equal to 10000 "
                "(Elasticsearch max_result_window)"
            )
        start, end = None, None
        for value in dates:
            match = re.match(r"^(>=|<=|>|<|=)?(.+)$", value)
            assert match
            operator, text = match.group(1) or "=", match.group(2)
            try:
                when, date_only = _parse_when(text)
            except ValueError:
                raise BadArgument(f"'{text}' is not a valid date") from None
            if operator in (">=", ">"):
                bound = when + (dt.timedelta(microseconds=1) if operator == ">" else dt.timedelta())
                start = bound if start is None else max(start, bound)
            elif operator in ("<", "<="):
                bound = when + (
                    dt.timedelta(microseconds=1) if operator == "<=" else dt.timedelta()
                )
                end = bound if end is None else min(end, bound)
            else:
                start = when if start is None else max(start, when)
                day_end = when + (
                    dt.timedelta(days=1) if date_only else dt.timedelta(microseconds=1)
                )
                end = day_end if end is None else min(end, day_end)
        key = (tuple(products), tuple(signatures))
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            selected = [
                crash
                for crash in self.crashes
                if _match_product(crash, products) and _match_signature(crash, signatures)
            ]
            cached = (selected, [crash.date for crash in selected])
            with self._lock:
                self._cache[key] = cached
        selected, selected_dates = cached
        low = 0 if start is None else bisect.bisect_left(selected_dates, start)
        high = len(selected) if end is None else bisect.bisect_left(selected_dates, end)
        high = max(low, high)
        total = high - low
        sort = meta.get("_sort", [""])[0]
        if sort == "-date":
            page = [
                selected[i]
                for i in range(high - 1 - offset, max(low, high - offset - number) - 1, -1)
            ]
        else:
            first = low + offset
            page = selected[first : min(high, first + number)]
        columns = meta.get("_columns") or ["uuid", "date", "signature", "product"]
        hits = [
            {
                column: (
                    crash.date.isoformat() if column == "date" else getattr(crash, column, None)
                )
                for column in columns
            }
            for crash in page
        ]
        return {"hits": hits, "total": total, "facets": {}, "errors": []}

    def reprocess(self, values: list[str]) -> None:
        if not values:
            raise BadArgument("'crash_ids' is required")
        parsed = []
        for value in values:
            crash_id, _, ruleset = value.partition(":")
            ruleset = ruleset or "default"
            if not CRASH_ID_RE.match(crash_id) or crash_id in self.reject_ids:
                raise BadArgument(f"Crash id '{crash_id}' is not valid.")
            if ruleset not in VALID_RULESETS:
                raise BadArgument(f"Ruleset '{ruleset}' is not valid.")
            parsed.append((crash_id, ruleset))
        with self._lock:
            for crash_id, ruleset in parsed:
                self.accepted[crash_id] += 1
                self.accepted_rulesets[ruleset] += 1


def _match_product(crash: Crash, products: list[str]) -> bool:
    wanted = [p for p in products if not p.startswith("!")]
    unwanted = [p[1:] for p in products if p.startswith("!")]
    if wanted and crash.product not in wanted:
        return False
    return crash.product not in unwanted


def _match_signature(crash: Crash, signatures: list[str]) -> bool:
    for value in signatures:
        if value.startswith("!~"):
            ok = value[2:] not in crash.signature
        elif value.startswith("!="):
            ok = crash.signature != value[2:]
        elif value.startswith("!"):
            ok = crash.signature != value[1:]
        elif value.startswith("~"):
            ok = value[1:] in crash.signature
        elif value.startswith("$"):
            ok = crash.signature.startswith(value[1:])
        elif value.startswith("="):
            ok = crash.signature == value[1:]
        else:
            ok = crash.signature == value
        if not ok:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    server_state: FakeCrashStats

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self, method: str) -> None:
        fake = self.server_state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        entry = Logged(
            method,
            parts.path,
            parts.query,
            dict(self.headers.items()),
            body if fake.keep_bodies else "",
        )
        with fake._lock:
            fake.log.append(entry)
        if parts.path == "/__fake__/stats":
            self._send(200, _stats(fake))
            return
        wait = fake.take_rate_token()
        if wait is not None:
            entry.status = 429
            retry_after = (
                str(max(1, math.ceil(wait))) if fake.retry_after_whole_seconds else f"{wait:.3f}"
            )
            self._send(
                429,
                {"error": "Too many requests"},
                {"Retry-After": retry_after},
            )
            return
        fault = fake.pick_fault(parts.path)
        if fault == "500":
            entry.status = 500
            self._send(500, {"error": "Internal Server Error (injected)"})
            return
        if fault == "drop":
            self._drop()
            return
        if fault == "slow":
            time.sleep(fake.slow_seconds)
        token = self.headers.get("Auth-Token")
        permissions: set[str] = set()
        if token is not None:
            if token not in fake.tokens:
                entry.status = 403
                self._send(403, {"error": "Invalid API token"})
                return
            permissions = fake.tokens[token]
        try:
            if parts.path == "/api/SuperSearch/":
                if method != "GET":
                    self._send(405, {"error": "Method not allowed"})
                    return
                payload = fake.search(parse_qsl(parts.query, keep_blank_values=True))
            elif parts.path == "/api/Reprocessing/":
                if method != "POST":
                    self._send(405, {"error": "Method not allowed"})
                    return
                if REPROCESS_PERMISSION not in permissions:
                    entry.status = 403
                    self._send(
                        403, {"error": "Forbidden: requires the Reprocess Crashes permission"}
                    )
                    return
                with fake._lock:
                    fake.reprocess_requests += 1
                    number = fake.reprocess_requests
                values = [v for k, v in parse_qsl(body, keep_blank_values=True) if k == "crash_ids"]
                if fake.hold_request is not None and number == fake.hold_request:
                    fake.holding.set()
                    fake.release.wait(timeout=60)
                fake.reprocess(values)
                payload = True
            else:
                self._send(404, {"error": "Page not found"})
                return
        except BadArgument as error:
            entry.status = 400
            self._send(400, {"error": str(error)})
            return
        if fault == "drop_after":
            # The work was done but the answer is lost: the client must retry.
            self._drop()
            return
        entry.status = 200
        self._send(200, payload)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


def _stats(fake: FakeCrashStats) -> dict:
    return {
        "distinct_accepted": fake.distinct_accepted,
        "accepted_total": sum(fake.accepted.values()),
        "reprocess_requests": fake.reprocess_requests,
        "requests": len(fake.log),
        "rate_limited": fake.rate_limited,
        "faults": dict(fake.faults_injected),
    }


# --- pytest fixtures (imported by tests/conftest.py) ---------------------------------------

_DATASETS: dict[int, list[Crash]] = {}


def dataset(matching: int) -> list[Crash]:
    if matching not in _DATASETS:
        _DATASETS[matching] = standard_dataset(matching)
    return _DATASETS[matching]


@pytest.fixture
def crashstats():
    """A running fake Crash Stats with 2,000 matching crashes (see standard_dataset)."""
    fake = FakeCrashStats(crashes=dataset(2_000)).start()
    yield fake
    fake.stop()


@pytest.fixture
def crashstats_env(tmp_path):
    """Environment for `invoke crashes.*` runs: the token, tiny retry times, cache in tmp."""
    return {
        "SOCORRO_REPROCESS_API_TOKEN": GOOD_TOKEN,
        "INVOKE_CRASHES_SLEEP": "0",
        "INVOKE_CRASHES_BACKOFF_BASE": "0.001",
        "INVOKE_CRASHES_BACKOFF_MAX": "0.01",
        "INVOKE_CRASHES_TIMEOUT": "5",
        "INVOKE_CRASHES_MAX_ATTEMPTS": "20",
        "INVOKE_CRASHES_MAX_RETRY_WAIT": "30",
        "INVOKE_CRASHES_PROGRESS_INTERVAL": "0",
        "INVOKE_CRASHES_CACHE_DIR": str(tmp_path / "crashes-cache"),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Crash Stats server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--crashes", type=int, default=25_000, help="matching crashes")
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=None, help="requests per minute")
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--token", action="append", default=[], help="extra reprocess tokens")
    args = parser.parse_args()
    fake = FakeCrashStats(
        crashes=generate_crashes(args.crashes, days=args.days),
        rate_per_minute=args.rate,
        burst=args.burst,
        fault_rate=args.fault_rate,
        keep_bodies=False,
    )
    for token in args.token:
        fake.tokens[token] = {REPROCESS_PERMISSION}
    fake.start(args.port)
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
