"""A pyinstrument profile split by concern: how much of the time went to
HTTP, botocore, base64, decoding, COPY formatting, PostgreSQL and so on.

pyinstrument samples the stack every millisecond or so (wall time), which
costs call-heavy code far less than cProfile's per-call bookkeeping, so the
split is not skewed toward code made of many small calls (botocore's model
walk, the COPY field formatters). Each sample's time goes to the concern of
the innermost frame that has a source file: time inside a C function
(``recv_into``, ``orjson.loads``, ``a2b_base64``) counts for the Python code
that called it, so ``a2b_base64`` under botocore's blob step is base64, and
under the fast parser it is parsing.
"""

from collections import defaultdict

# (label, path fragments): the first label whose fragment is in a file's
# path wins, so the more specific entries come first.
CONCERNS = [
    ("botocore: parse the answer", ("/botocore/parsers.py", "/dateutil/")),
    ("base64 (botocore's blob step)", ("/base64.py",)),
    ("stdlib json (botocore)", ("/json/",)),
    ("botocore: build, sign, send", ("/botocore/",)),
    ("HTTP: urllib3, http.client, socket (incl. waiting for the endpoint)",
     ("/urllib3/", "/http/client.py", "/socket.py", "/ssl.py",
      "/selectors.py", "/email/")),
    ("fast parse: orjson + binascii", ("worker/kinesis/fast_records.py",)),
    ("decode: records, KPL split",
     ("worker/records/", "worker/kinesis/kpl.py",
      "worker/runtime/decode_page.py", "/aws_kinesis_agg/")),
    ("kinesis client and retry wrapper",
     ("worker/kinesis/", "/tenacity/")),
    ("COPY formatting (sink rows)", ("worker/sink/rows.py",)),
    ("sink logic", ("worker/sink/",)),
    ("PostgreSQL: psycopg (incl. waiting for the server)",
     ("/psycopg/", "/psycopg_binary/")),
]
OTHER = "other"


def concern_of(path: str | None) -> str | None:
    """The concern of a source file; None for frames without one."""
    if not path or path.startswith("<"):
        return None
    for label, fragments in CONCERNS:
        if any(fragment in path for fragment in fragments):
            return label
    return OTHER


def split(root) -> dict[str, float]:
    """Seconds per concern in a pyinstrument frame tree."""
    totals: dict[str, float] = defaultdict(float)

    def visit(frame, inherited: str) -> None:
        concern = concern_of(frame.file_path) or inherited
        children = frame.children
        if not children:
            totals[concern] += frame.time
            return
        own = frame.time - sum(child.time for child in children)
        if own > 0:
            totals[concern] += own
        for child in children:
            visit(child, concern)

    visit(root, OTHER)
    return dict(totals)


def table(totals: dict[str, float], records: int) -> list[tuple]:
    """(concern, µs per record, share) rows, largest first."""
    whole = sum(totals.values()) or 1.0
    rows = [(label, seconds * 1e6 / records, seconds / whole)
            for label, seconds in totals.items() if seconds > 0]
    return sorted(rows, key=lambda row: -row[1])
