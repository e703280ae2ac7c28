"""bench/results.md and the README's summary block, from one run's outcomes.

Nothing here measures; every figure comes from the outcomes passed in, so
the report can only show what that run saw.
"""

import re
from pathlib import Path

README_START = "<!-- bench-summary:start -->"
README_END = "<!-- bench-summary:end -->"

# What each benchmark is, in a sentence or two, for the report.
ABOUT = {
    "decode": "Decoder throughput on realistic payloads against a bare "
              "`orjson.loads` (bench/bench_decode.py, another engineer's; "
              "context for the rest, no target).",
    "sink": "Decode plus load of realistic readings (8 circuits each) "
            "against `psql \\copy` of the same rows pre-formatted (the "
            "ceiling) and against a per-message INSERT-and-COMMIT consumer "
            "(bench/bench_sink.py, another engineer's).",
    "client": "CPU per record in the worker process and records per second "
              "one process stores, fed by bench/fake_kinesis.py (canned "
              "10,000-record pages in its own process), with both "
              "GetRecords paths: boto3's parser and the fast path "
              "(worker/kinesis/fast_records.py, the default).",
    "drain": "A LocalStack stream pre-loaded with 50,000 readings on 4 "
             "shards: time for `python -m worker run` to store them all "
             "(from its start, and from its first lease) against a bare "
             "GetRecords loop that reads the same records with one thread "
             "per shard and does nothing with them. Both ask for pages of "
             "the same size (GetRecords Limit 2,000; the worker's "
             "MAX_RECORDS), and they take turns over three rounds; the "
             "verdict is the median round's ratio. kinesis-mock is the "
             "limit of both reads (one Node thread, about a millisecond "
             "per record returned), and it slows as a stream grows: the "
             "pre-load's progress lines show this run's pace. LocalStack "
             "answers MillisBehindLatest 0 throughout, so the plot's lag "
             "is the backlog line.",
    "latency": "Put-to-row at a steady rate with the default idle interval "
               "(1 s), the stream being bench/fake_kinesis.py because "
               "LocalStack here takes only about 450 puts/s.",
    "memory": "Peak RSS (VmHWM) of `python -m worker run` with default "
              "settings draining a backlog on 8 shards from "
              "bench/fake_kinesis.py. The plot's MillisBehindLatest "
              "grows through the drain because the fake endpoint "
              "stamps the whole backlog as arriving when it starts "
              "serving.",
}
TITLES = {
    "decode": "Decode (context)",
    "sink": "1. Sink: decode + load",
    "client": "3. Client cost",
    "drain": "2. Drain",
    "latency": "4. Latency",
    "memory": "5. Memory",
}
PLOTS = {"drain": "drain.png", "memory": "backlog.png"}

# The sink runs the summary shows, as the report names them.
_SINK_MODES = {
    "decode+load": "decode, then load, in turn",
    "decode-ahead": "decode one batch ahead (as the worker does)",
}
_SINK_RATIO = re.compile(
    r"^(\S+) / (\S+) = ([\d.]+) .*?target >= ([\d.]+)", re.M)
_CEILING_VS_NAIVE = re.compile(r"^ceiling / naive = ([\d.]+)", re.M)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summary_rows(outcome) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, PASS/MISS) for one benchmark."""
    if outcome.error:
        return [(TITLES[outcome.name], f"failed: {outcome.error}", "", "-")]
    f = outcome.figures
    if outcome.name == "sink":
        rows = []
        for fast, slow, ratio, target in _SINK_RATIO.findall(outcome.output):
            if fast not in _SINK_MODES:
                continue
            shown = f"{float(ratio):.2f}" if slow == "ceiling" else \
                f"{float(ratio):.1f}x"
            rows.append((f"sink: {_SINK_MODES[fast]} / {slow}",
                         shown, f">= {target}",
                         verdict(float(ratio) >= float(target))))
        bound = _CEILING_VS_NAIVE.search(outcome.output)
        if bound:
            # Context for the 50x target: what psql itself reaches.
            rows.append(("sink: the ceiling itself (psql \\copy) / naive",
                         f"{float(bound.group(1)):.1f}x",
                         "the most any client on one connection reaches",
                         "-"))
        return rows or [("sink", "figures not found in its output", "", "-")]
    if outcome.name == "client":
        fast, slow = f["worker"]["fast"], f["worker"]["boto3"]
        c = f["components"]
        parse_ratio = c["botocore_parse"] / c["fast_parse"]
        return [
            ("client: records/s one worker process stores",
             f"{fast['records_per_s']:,.0f}", ">= 50,000",
             verdict(fast["records_per_s"] >= 50_000)),
            ("client: botocore's parse / fast parse, µs per record",
             f"{c['botocore_parse']:.1f} / {c['fast_parse']:.1f} = "
             f"{parse_ratio:.1f}x", "beat the SDK's parse (> 1x)",
             verdict(parse_ratio > 1)),
            ("client: worker CPU µs per record, fast / boto3 path",
             f"{fast['cpu_us']:.0f} / {slow['cpu_us']:.0f}", "-", "-"),
        ]
    if outcome.name == "drain":
        return [(f"drain: worker / bare read, {f['readings']:,} readings on "
                 f"{f['shards']} shards", f"{f['ratio']:.2f} "
                 f"({f['worker_s']:.1f} s / {f['bare_s']:.1f} s, median "
                 f"of {len(f['rounds'])} rounds)",
                 "<= 1.2", verdict(f["ratio"] <= 1.2))]
    if outcome.name == "latency":
        return [(f"latency: put-to-row at {f['achieved_rate']:.0f}/s, "
                 f"p50 / p99", f"{f['p50_s']:.2f} s / {f['p99_s']:.2f} s",
                 "p99 < 2 s", verdict(f["p99_s"] < 2.0))]
    if outcome.name == "memory":
        return [(f"memory: peak RSS draining {f['records']:,} records on "
                 f"{f['shards']} shards", f"{f['peak_rss_mb']:.0f} MB",
                 "< 300 MB", verdict(f["peak_rss_mb"] < 300))]
    return []


def summary_table(outcomes) -> str:
    lines = ["| benchmark | measured | target | result |",
             "|---|---|---|---|"]
    for outcome in outcomes:
        for row in summary_rows(outcome):
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def client_tables(f: dict) -> str:
    """Where the worker's time goes, from the client benchmark's figures."""
    c = f["components"]
    lines = [
        "Alone, on one canned 10,000-record page (CPU µs per record, best "
        "of 5):", "",
        "| step | µs/record |", "|---|---|",
        f"| botocore's parse of the answer (the bar) | "
        f"{c['botocore_parse']:.1f} |",
        f"| fast parse (orjson + binascii) | {c['fast_parse']:.1f} |",
        f"| whole GetRecords call, boto3 path (client side) | "
        f"{c['call_boto3']:.1f} |",
        f"| whole GetRecords call, fast path (client side) | "
        f"{c['call_fast']:.1f} |",
        f"| decode_page (KPL check + decode_record) | "
        f"{c['decode_page']:.1f} |",
        f"| binary COPY rows (sink rows) | {c['copy_format']:.1f} |",
        "", "One thread fetching, decoding and storing pages as a shard "
        "consumer does (µs per record, unprofiled; wall minus CPU is "
        "waiting, mostly for PostgreSQL in the store step):", "",
        "| stage | boto3 path CPU | boto3 path wall | fast path CPU | "
        "fast path wall |", "|---|---|---|---|---|",
    ]
    slow, fast = f["pipeline_boto3"], f["pipeline_fast"]
    for stage in fast["cpu_us"]:
        lines.append(
            f"| {stage} | {slow['cpu_us'][stage]:.1f} | "
            f"{slow['wall_us'][stage]:.1f} | {fast['cpu_us'][stage]:.1f} | "
            f"{fast['wall_us'][stage]:.1f} |")
    lines.append(
        f"| total | {sum(slow['cpu_us'].values()):.1f} | "
        f"{sum(slow['wall_us'].values()):.1f} | "
        f"{sum(fast['cpu_us'].values()):.1f} | "
        f"{sum(fast['wall_us'].values()):.1f} |")
    return "\n".join(lines)


def render_results(outcomes, command: str, machine: dict, started,
                   quick: bool, plots: Path) -> tuple[str, str]:
    """(results.md text, the summary table for the README)."""
    summary = summary_table(outcomes)
    out = [
        "# Benchmark results", "",
        f"Written by `bench/run_all.py` from the run of `{command}` started "
        f"{started:%Y-%m-%d %H:%M} UTC. Every figure below was measured in "
        "that run; each ratio compares two things measured in the same run "
        "on the same machine. Rerun `make bench` to replace them all.",
    ]
    if quick:
        out += ["", "**Quick run: small sizes, not the issue's.**"]
    out += [
        "", "## Machine", "",
        f"- {machine['cpus']} CPUs; {machine['memory']} at the start",
        f"- Python {machine['python']}, Linux {machine['kernel']}",
        f"- load average at the start: {machine['load']} (the machine is "
        "shared: other engineers' test suites ran during the run, which is "
        "why every figure is a ratio against something measured alongside "
        "it, and why each benchmark's load average is given)",
        "- PostgreSQL 15 on 127.0.0.1:5432 and LocalStack (kinesis-mock) on "
        "the same two cores as the worker",
        "", "## Summary", "", summary, "",
    ]
    for outcome in outcomes:
        out += [f"## {TITLES[outcome.name]}", "", ABOUT[outcome.name], "",
                f"Load average before {outcome.load_before}, after "
                f"{outcome.load_after}; took {outcome.seconds:.0f} s.", ""]
        if outcome.name == "client" and not outcome.error:
            out += [client_tables(outcome.figures), ""]
        plot = PLOTS.get(outcome.name)
        if plot and not outcome.error and (plots / plot).exists():
            out += [f"![{TITLES[outcome.name]}]({plot})", ""]
        out += ["Output (the command is its first line):", "", "```",
                outcome.output.rstrip(), "```", ""]
    return "\n".join(out), summary


def update_readme(readme: Path, summary: str) -> bool:
    """Replace the README's summary block; False when it has none."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    block = (f"{README_START}\n{summary}\n\nFrom the last full `make bench`; "
             "commands, method and every figure in "
             "[bench/results.md](bench/results.md).\n")
    readme.write_text(text[:start] + block + text[end:])
    return True
