"""Crash reprocessing: fetch crash ids from Super Search and submit them to the Reprocessing API."""

from invoke import task

from lib.errors import UserError
from lib.settings import is_dry, number, resolve_path, setting, text_setting


def _host(c, host):
    from lib.crashstats import check_host

    return check_host(host or setting(c, "crashes.host"))


def _policy(c):
    from lib.crashstats import RetryPolicy

    return RetryPolicy(
        max_attempts=number(c, "crashes.max_attempts", kind=int, minimum=1),
        max_wait=number(c, "crashes.max_retry_wait", minimum=0),
        backoff_base=number(c, "crashes.backoff_base", minimum=0),
        backoff_max=number(c, "crashes.backoff_max", minimum=0),
        timeout=number(c, "crashes.timeout", minimum=0.001),
    )


def _number(value, name, kind=int):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (got {value!r})") from None


def _progress_on_terminal():
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# Long flags only: automatic short flags would give `-h` to --host/--chunk-size, which reads
# like Invoke's own -h (help).
@task(
    auto_shortflags=False,
    iterable=["crash_id"],
    help={
        "crash_id": "One crash id (bare, bp-<id> or a report URL); repeat for a few more.",
        "input": "File of crash ids, one per line ('-' means stdin). With no ids given at all, "
        "they are read from stdin when it is not a terminal.",
        "journal": "Journal file recording the accepted ids (default: <file>.reprocess-journal "
        "beside the input file; for stdin and --crash-id, in crashes.cache_dir, the unfinished "
        "journal of the same host and ruleset that shares accepted ids with the input).",
        "ruleset": "Processor ruleset: default or regenerate_signature (sends <id>:<ruleset>).",
        "chunk_size": "Ids per request (default: crashes.chunk_size, 50).",
        "sleep": "Seconds to sleep between chunks (default: crashes.sleep, 1).",
        "allow_many": "Required to send more than 10,000 ids (tell the Crash Stats team first).",
        "skip_invalid": "Leave invalid lines out instead of refusing the whole input.",
        "skip_refused": "When the server refuses a chunk (HTTP 400) naming some of its ids, "
        "record those as refused and send the rest of the chunk, then go on.",
        "restart": "Forget the journal of this input and send every id again.",
        "host": "Crash Stats base URL (default: crashes.host).",
        "dry_run": "List the chunks that would be sent; send nothing (same as `invoke --dry`).",
    },
)
def reprocess(
    c,
    crash_id=None,
    input=None,
    journal=None,
    ruleset=None,
    chunk_size=None,
    sleep=None,
    allow_many=False,
    skip_invalid=False,
    skip_refused=False,
    restart=False,
    host=None,
    dry_run=False,
):
    """Send crash ids to the Reprocessing API in chunks; rerun the same command to resume."""
    import io
    import os
    import sys

    from lib.console import stdin_is_terminal
    from lib.reprocess import Options, default_cache_dir, input_journal_path, run

    ids = list(crash_id or [])
    if ids and input:
        raise UserError("give --crash-id or --input, not both")
    if journal:
        parent = resolve_path(journal).parent
        if not parent.is_dir():
            raise UserError(
                f"--journal {journal}: the directory {parent} does not exist (create it first)"
            )
    options = Options(
        host=_host(c, host),
        ruleset=(ruleset or "").strip(),
        chunk_size=_number(
            chunk_size if chunk_size is not None else setting(c, "crashes.chunk_size"),
            "--chunk-size",
        ),
        sleep=_number(
            sleep if sleep is not None else setting(c, "crashes.sleep"), "--sleep", float
        ),
        allow_many=bool(allow_many),
        skip_invalid=bool(skip_invalid),
        skip_refused=bool(skip_refused),
        restart=bool(restart),
        dry_run=is_dry(c, dry_run),
        cache_dir=default_cache_dir(setting(c, "crashes.cache_dir")),
        journal=resolve_path(journal) if journal else None,
        env_file=setting(c, "crashes.env_file") or None,
        progress_terminal=_progress_on_terminal(),
        progress_interval=number(c, "crashes.progress_interval", minimum=0),
        policy=_policy(c),
    )
    if ids:
        return run(ids, "--crash-id", options)
    if input and input != "-":
        path = resolve_path(input)
        if path.is_dir():
            raise UserError(f"--input {input}: is a directory, not a file of crash ids")
        if not path.is_file():
            raise UserError(f"--input {input}: no such file")
        if options.journal is None:
            # A file's journal belongs to the file (its path), whatever its content becomes.
            beside = path.parent / f"{path.name}.reprocess-journal"
            if os.access(path.parent, os.W_OK):
                options.journal = beside
            else:
                options.journal = input_journal_path(options.cache_dir, path)
        with open(path, encoding="utf-8-sig", errors="replace", newline=None) as stream:
            return run(stream, str(path), options)
    if input != "-" and (sys.stdin is None or stdin_is_terminal()):
        raise UserError("no crash ids: give --crash-id ID, --input FILE, or pipe ids on stdin")
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace")
    return run(stream, "stdin", options)


@task(
    auto_shortflags=False,
    help={
        "signature": "Exact signature to match.",
        "signature_contains": "Text the signature contains.",
        "url": "A Crash Stats search URL; its filters are kept (parameters starting with _ "
        "are dropped, except _sort). Flags given as well override the URL's values.",
        "product": "Product to search (default: the URL's, else Firefox); 'all' for any product.",
        "date": "YYYY-MM-DD, today, yesterday, thisweek, thismonth, or START..END (END day "
        "included); default: the URL's dates, else yesterday.",
        "num": "How many ids: a number (default 100) or 'all' (the date window is split as "
        "needed past Super Search's 10,000 limit).",
        "host": "Crash Stats base URL (default: crashes.host).",
    },
)
def fetch_ids(
    c,
    signature=None,
    signature_contains=None,
    url=None,
    product=None,
    date=None,
    num=None,
    host=None,
):
    """Print the crash ids matching a Super Search query, one per line, on stdout."""
    from lib.supersearch import build_query, parse_num, run_fetch

    query = build_query(
        url=url,
        signature=signature,
        signature_contains=signature_contains,
        product=product,
        date=date,
    )
    base = _host(c, host)
    if url:
        from lib.console import info
        from lib.reprocess_request import search_host

        url_host = search_host(url)
        if url_host.lower() != base.lower():
            # The token only ever goes to crashes.host or an explicit --host, never to a host
            # taken from a pasted link, so the URL's host is not searched on its own.
            info(
                f"note: --url names {url_host} but the search goes to {base} "
                f"({'--host' if host else 'crashes.host'}); give --host {url_host} to search "
                f"there instead (the Crash Stats token would then be sent to it)"
            )
    run_fetch(
        base,
        query,
        parse_num(num),
        env_file=setting(c, "crashes.env_file") or None,
        policy=_policy(c),
        progress_terminal=_progress_on_terminal(),
        progress_interval=number(c, "crashes.progress_interval", minimum=0),
    )


@task(
    auto_shortflags=False,
    help={
        "url": "The Crash Stats search URL of the crashes to reprocess.",
        "reason": "Why they need reprocessing (goes into the bug's summary and text).",
        "host": "Crash Stats base URL to count matches with (default: the URL's own host); "
        "counting is anonymous: no token is ever sent.",
        "dry_run": "Show the bug that would be filed; file nothing (same as `invoke --dry`).",
    },
)
def request_reprocessing(c, url=None, reason=None, host=None, dry_run=False):
    """File a bug asking for the crashes of a search to be reprocessed (for non-admins)."""
    from lib.bugzilla import api_key_from_environment, client_from_config, enter_bug_url
    from lib.console import info
    from lib.crashstats import CrashStatsClient
    from lib.reprocess_request import build_request, search_host

    if not url:
        raise UserError("--url is required: the Crash Stats search URL of the crashes")
    base = _host(c, host or search_host(url))
    # Anonymous on purpose: counting needs no token, and the host comes from a pasted URL, so
    # sending one would hand an admin's reprocessing token to whatever host the link names.
    client = CrashStatsClient(base, None)
    client.policy = _policy(c)
    try:
        request = build_request(
            client, url, reason, template_dir=text_setting(c, "templates.dir", required=False)
        )
    finally:
        client.close()
    info(f"{request.total:,} crash reports match the search")
    product = text_setting(c, "crashes.request_product")
    component = text_setting(c, "crashes.request_component")
    bugzilla_url = text_setting(c, "bugzilla.url")
    dry = is_dry(c, dry_run)
    api_key = api_key_from_environment(bugzilla_url)
    if not api_key:
        info(
            "no Bugzilla API key (BUGZILLA_API_KEY or bugzillarc), so no bug was filed; "
            "open this link to file it yourself:"
        )
        print(
            enter_bug_url(
                bugzilla_url,
                product=product,
                component=component,
                summary=request.summary,
                description=request.description,
                bug_type="task",
            )
        )
        return
    bugzilla = client_from_config(c, dry_run=dry, api_key=api_key)
    existing = bugzilla.find_bugs(product, request.summary, open_only=True)
    if existing:
        bug_id = int(existing[0]["id"])
        info(f"bug {bug_id} already asks for this ({request.summary!r}); not filing it again")
        print(bugzilla.bug_url(bug_id))
        return
    bug_id = bugzilla.create_bug(
        product=product,
        component=component,
        summary=request.summary,
        description=request.description,
        bug_type="task",
    )
    if dry:
        info(f"dry run: nothing was filed in {product} :: {component}; the description:")
        print(request.description, end="")
        return
    info(f"filed bug {bug_id}: {request.summary}")
    print(bugzilla.bug_url(bug_id))
