"""What tracing costs on the point-read hot path (bench/point_reads.py's pgkeel variants).

Interleaved A/B: every round runs each variant for ``--seconds`` in a fresh process (the
tracer provider is per process), in an order reversed every other round, and the verdict is
the median of the per-round ratios against the base tree (``--base``: a checkout of the code
without the hook, e.g. ``git archive <main> src | tar -x -C /tmp/base``). Modes:

- ``base``: the code without the tracing hook;
- ``off``: the hook, ``opentelemetry`` not imported (the extra absent, or installed and unused);
- ``api``: ``opentelemetry.trace`` imported, no tracer provider set (the API's proxy);
- ``noop``: ``trace.set_tracer_provider(NoOpTracerProvider())``;
- ``sdk-off``: the SDK's TracerProvider with the ALWAYS_OFF sampler (spans made, not recorded);
- ``sdk``: the SDK recording every span (a batch processor and an exporter that drops them).

``--micro`` also times the hook alone (a decorated no-op method against a plain one) in ns/call.

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/tracing.py --base /tmp/base [--rounds 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODES = ("base", "off", "api", "noop", "sdk-off", "sdk")
FACES = ("sync", "async")


def child(mode: str, face: str, url: str, a: argparse.Namespace) -> None:
    """One variant, in this process: set up tracing as ``mode`` says, run, print JSON."""
    if mode in ("api", "noop", "sdk-off", "sdk"):
        from opentelemetry import trace

        if mode == "noop":
            trace.set_tracer_provider(trace.NoOpTracerProvider())
        elif mode.startswith("sdk"):
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )
            from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

            class Drop(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    return SpanExportResult.SUCCESS

            provider = TracerProvider(sampler=ALWAYS_OFF if mode == "sdk-off" else ALWAYS_ON)
            provider.add_span_processor(BatchSpanProcessor(Drop()))
            trace.set_tracer_provider(provider)
    sys.path.insert(0, str(HERE))
    import pgkeel
    import point_reads

    fn = point_reads.bench_pgkeel_sync if face == "sync" else point_reads.bench_pgkeel_async
    n = fn(url, a)
    loaded = "opentelemetry" in {m.partition(".")[0] for m in sys.modules}
    print(json.dumps({"qps": n / a.seconds, "pgkeel": pgkeel.__file__, "otel": loaded}))


def micro() -> None:
    """ns per call of the hook when nothing is traced: a traced no-op method (with the command
    tag note the query methods make) against a plain one, in the off, api and noop modes."""
    from types import SimpleNamespace

    from pgkeel.ops._trace import note, traced

    class Plain:
        config = SimpleNamespace(slow_query_ms=None)

        def q(self, query: str) -> int:
            return 1

        async def aq(self, query: str) -> int:
            return 1

    class Hooked(Plain):
        @traced(rows="affected")
        def q(self, query: str) -> int:
            note(self)
            return 1

        @traced(rows="affected")
        async def aq(self, query: str) -> int:
            note(self)
            return 1

    def drive(coro: Any) -> None:
        with contextlib.suppress(StopIteration):
            coro.send(None)

    p, h = Plain(), Hooked()
    cases = (
        ("sync", lambda: p.q("SELECT 1"), lambda: h.q("SELECT 1")),
        ("async", lambda: drive(p.aq("SELECT 1")), lambda: drive(h.aq("SELECT 1"))),
    )

    def measure(mode: str) -> None:
        n = 100_000
        for face, plain, hooked in cases:
            # Interleaved, best of 7: the least disturbed figure of each.
            t_plain, t_hook = [], []
            for _ in range(7):
                t_plain.append(timeit.timeit(plain, number=n) / n * 1e9)
                t_hook.append(timeit.timeit(hooked, number=n) / n * 1e9)
            extra = min(t_hook) - min(t_plain)
            print(f"  hook, {mode:4s} {face:5s}: {extra:5.0f} ns/call ({min(t_plain):.0f} ns bare)")

    measure("off")
    from opentelemetry import trace

    measure("api")
    trace.set_tracer_provider(trace.NoOpTracerProvider())
    measure("noop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a tree whose src/ holds the code without the hook")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant and round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--faces", default=",".join(FACES))
    parser.add_argument("--micro", action="store_true", help="also time the hook alone")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FACE", "URL"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        child(*a.child, a)
        return

    modes = [m for m in a.modes.split(",") if m and (m != "base" or a.base)]
    faces = a.faces.split(",")
    if a.micro:
        micro()
    if a.rounds == 0:  # --micro --rounds 0: the hook alone
        return

    from pgkeel import embedded

    sys.path.insert(0, str(HERE))
    import point_reads

    server = None
    url = os.environ.get("PGKEEL_BENCH_URL")
    if not url:
        server = embedded.start(settings={"max_connections": 100})
        url = server.url
    try:
        point_reads.setup(url, a.rows)
        print(
            f"tracing cost on point reads: {a.clients} clients, pool {a.pool}, {a.rows:,} rows, "
            f"{a.seconds:g} s per variant, {a.rounds} rounds; Python {platform.python_version()},"
            f" {os.cpu_count()} CPUs",
            flush=True,
        )
        variants = [(m, f) for f in faces for m in modes]
        runs: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        for r in range(a.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for mode, face in order:
                env = dict(os.environ)
                if mode == "base":
                    env["PYTHONPATH"] = str(Path(a.base) / "src")
                args = ["--seconds", str(a.seconds), "--clients", str(a.clients)]
                args += ["--pool", str(a.pool), "--rows", str(a.rows)]
                out = subprocess.run(
                    [sys.executable, __file__, *args, "--child", mode, face, url],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                got = json.loads(out.strip().splitlines()[-1])
                want_base = mode == "base"
                assert got["pgkeel"].startswith(str(Path(a.base or "/nonexistent"))) == want_base
                assert got["otel"] == (mode not in ("base", "off")), got
                runs[(mode, face)].append(got["qps"])
            print(
                f"  round {r + 1}: "
                + ", ".join(f"{m}/{f} {runs[(m, f)][-1]:,.0f}" for m, f in variants),
                flush=True,
            )
        ref = "base" if "base" in modes else "off"
        print(f"\n| variant | median q/s | median of per-round ratios vs {ref} | ratio range |")
        print("|---|---:|---:|---|")
        for mode, face in variants:
            qps = runs[(mode, face)]
            ratios = [x / y for x, y in zip(qps, runs[(ref, face)], strict=True)]
            print(
                f"| {face} {mode} | {statistics.median(qps):,.0f} | "
                f"{statistics.median(ratios):.3f}x | {min(ratios):.2f} - {max(ratios):.2f} |"
            )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
