"""pgkeel check against bandit (B608) and ruff (S608): precision, recall and F1 per rule on the
marked corpus (tests/check_corpus), and the time to check a large tree (the venv's
site-packages by default), all in one run.

Scoring is per case: a case is a top-level function or class of a corpus file (module-level code
is one more case). A tool "finds" rule R in a case when it reports R (bandit's B608 and ruff's
S608 count as PGK001) on a line of that case; the case's expected count is its `# expect: R`
marks. TP = min(expected, found), FP = found - TP, FN = expected - TP, summed over cases. Per
case rather than per line because each tool reports a finding on a different line (bandit and
ruff on the string, pgkeel on the query argument); per case is fair to all three.

    flock /tmp/pgkeel-bench.lock .venv/bin/python bench/check.py [--tree DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

from pgkeel.check import RULES, _tstrings, check_source
from pgkeel.check._engine import iter_files

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "check_corpus"
BIN = Path(sys.executable).parent

Key = tuple[str, str, str]  # (file, case, rule)


def cases(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of each top-level def/class; the rest is '<module>'."""
    text = path.read_text()
    rewritten = _tstrings.rewrite(text)  # t-strings, on Pythons before 3.14
    tree = ast.parse(rewritten[0] if rewritten else text)
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out.append((node.name, first, node.end_lineno or node.lineno))
    return out


def case_of(spans: list[tuple[str, int, int]], line: int) -> str:
    for name, first, last in spans:
        if first <= line <= last:
            return name
    return "<module>"


def expected() -> Counter[Key]:
    want: Counter[Key] = Counter()
    for path in sorted(CORPUS.glob("pgk*.py")):
        spans = cases(path)
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "# expect:" in line:
                for code in line.split("# expect:", 1)[1].replace(",", " ").split():
                    want[(path.name, case_of(spans, number), code)] += 1
    return want


def run_pgkeel() -> Counter[Key]:
    got: Counter[Key] = Counter()
    for path in sorted(CORPUS.glob("pgk*.py")):
        spans = cases(path)
        for f in check_source(path.read_text(), str(path)):
            got[(path.name, case_of(spans, f.line), f.code)] += 1
    return got


def _tool(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def run_bandit() -> Counter[Key] | None:
    exe = _tool("bandit")
    if exe is None:
        return None
    files = [str(p) for p in sorted(CORPUS.glob("pgk*.py"))]
    out = subprocess.run(
        [exe, "-q", "-f", "json", "-t", "B608", *files], capture_output=True, text=True, check=False
    )
    got: Counter[Key] = Counter()
    for r in json.loads(out.stdout)["results"]:
        path = Path(r["filename"])
        got[(path.name, case_of(cases(path), r["line_number"]), "PGK001")] += 1
    return got


def run_ruff() -> Counter[Key] | None:
    exe = _tool("ruff")
    if exe is None:
        return None
    files = [str(p) for p in sorted(CORPUS.glob("pgk*.py"))]
    out = subprocess.run(
        [exe, "check", "--isolated", "--no-cache", "--select", "S608", "--output-format", "json",
         *files],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    got: Counter[Key] = Counter()
    for r in json.loads(out.stdout):
        path = Path(r["filename"])
        got[(path.name, case_of(cases(path), r["location"]["row"]), "PGK001")] += 1
    return got


def score(want: Counter[Key], got: Counter[Key], rule: str) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for key in set(want) | set(got):
        if key[2] != rule:
            continue
        hit = min(want[key], got[key])
        tp += hit
        fp += got[key] - hit
        fn += want[key] - hit
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def timed(cmd: list[str], repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        runs.append(time.perf_counter() - start)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-tree", action="store_true", help="Score the corpus only.")
    ap.add_argument("--bandit-tree", action="store_true", help="Also time bandit on the tree.")
    args = ap.parse_args()

    want = expected()
    tools = {"pgkeel": run_pgkeel(), "bandit B608": run_bandit(), "ruff S608": run_ruff()}
    cases_total = sum(len(cases(p)) + 1 for p in CORPUS.glob("pgk*.py"))
    print(f"corpus: {len(list(CORPUS.glob('pgk*.py')))} files, {cases_total} cases, "
          f"{sum(want.values())} expected findings\n")  # fmt: skip
    print("| rule | tool | TP | FP | FN | precision | recall | F1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for rule in RULES:
        for name, got in tools.items():
            if got is None or (name != "pgkeel" and rule != "PGK001"):
                continue
            tp, fp, fn = score(want, got, rule)
            p, r, f = prf(tp, fp, fn)
            bold = "**" if name == "pgkeel" else ""
            print(f"| {rule} | {bold}{name}{bold} | {tp} | {fp} | {fn} | {p:.2f} | {r:.2f} | "
                  f"{f:.2f} |")  # fmt: skip
    if args.no_tree:
        return

    print(f"\nmedian of {args.repeat} runs (each run listed):\n")
    print("| tree | tool | command | median s | lines/s |")
    print("|---|---|---|---:|---:|")
    slice_ = _slice(args.tree, 100_000)
    for label, roots, with_bandit in (
        ("whole", [args.tree], args.bandit_tree),
        ("100k", slice_, False),
    ):
        files = list(iter_files(roots, _config()))
        lines = sum(len(p.read_bytes().splitlines()) for p in files)
        where = f"{label}: {len(files)} files, {lines:,} lines"
        paths = [str(r) for r in roots]
        commands = {
            "pgkeel check": [str(BIN / "pgkeel"), "check", "--exit-zero", *paths],
            "ruff S608": [
                _tool("ruff") or "ruff", "check", "--isolated", "--no-cache", "--select", "S608",
                "--exit-zero", "--quiet", *paths,
            ],
        }  # fmt: skip
        if with_bandit and _tool("bandit"):
            commands["bandit B608"] = [str(_tool("bandit")), "-q", "-t", "B608", "-r", *paths]
        for name, cmd in commands.items():
            runs = timed(cmd, args.repeat)
            med = statistics.median(runs)
            shown = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:4]))
            print(f"| {where} | {name} | `{shown} ...` | {med:.2f} "
                  f"({', '.join(f'{r:.2f}' for r in runs)}) | {lines / med:,.0f} |")  # fmt: skip
    print(f"\n100k slice: {', '.join(p.name for p in slice_)}")


def _slice(tree: Path, target: int) -> list[Path]:
    """Whole packages of ``tree``, in name order, until they hold ``target`` lines."""
    chosen, total = [], 0
    for pkg in sorted(p for p in tree.iterdir() if p.is_dir() and not p.name.endswith("-info")):
        n = sum(len(f.read_bytes().splitlines()) for f in iter_files([pkg], _config()))
        if n:
            chosen.append(pkg)
            total += n
        if total >= target:
            break
    return chosen


def _config():  # type: ignore[no-untyped-def]
    from pgkeel.check import Config

    return Config(root=Path("/"))


if __name__ == "__main__":
    main()
