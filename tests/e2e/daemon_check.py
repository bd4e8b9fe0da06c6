#!/usr/bin/env python3
"""daemon_check.py — bit-exact comparisons for the daemon's end-to-end tests.

  daemon_check.py metrics REF.jsonl DAEMON.json
      REF.jsonl is `vaed train --metrics` output (one JSON object per step); DAEMON.json
      is GET /v1/jobs/{id}/metrics (columnar arrays). Every step of the reference must
      appear exactly once, in order, with no gap and nothing extra, and every per-step
      figure the reference has (all keys but "time") must be the same double, bit for
      bit. Python parses both texts with correct rounding, so equal doubles is exactly
      what the comparison checks; the bits are compared, so -0.0 != 0.0 and NaN == NaN.

  daemon_check.py test-elbo SUMMARY.json EPOCHS.json EPOCHS_WANTED
      SUMMARY.json is `vaed train` stdout, printed with 10 significant digits;
      EPOCHS.json is GET /v1/jobs/{id}/epochs. The job must have one "train" row per
      epoch, one "test" row per epoch, and its last test row must print, at 10
      significant digits, exactly as the summary's test xent, kl and elbo do, with the
      same active_units.

  daemon_check.py same-rows BEFORE.json AFTER.json
      Both are GET /v1/jobs/{id}/metrics of the same job, BEFORE taken before a crash.
      Every step BEFORE has must be in AFTER once, with every column (but "time")
      bit-identical: the rows recomputed after recovery are the rows first computed.

  daemon_check.py wal-tail DB-wal
      Prints what a crash left in a SQLite WAL file: the frames of the current WAL
      generation and how many of them, at the end, belong to a transaction that never
      wrote its commit frame (a write the kill interrupted). Information only; exits 0.

Exits 0 when everything matches; otherwise prints what differed (at most 10 lines of
detail) and exits 1. Standard library only.
"""
import json
import struct
import sys


def bits(x):
    return struct.pack("<d", float(x))


def load_jsonl(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise SystemExit("%s: line %d: %s" % (path, n, e))
    return rows


def same(a, b):
    """Bit-equal numbers, or lists of them (kl_groups; null stands for NaN)."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    if a is None or b is None:
        return a is None and b is None
    return bits(a) == bits(b)


def cmd_metrics(ref_path, daemon_path):
    ref = load_jsonl(ref_path)
    with open(daemon_path) as f:
        d = json.load(f)
    problems = []
    steps = d.get("step")
    if not isinstance(steps, list):
        raise SystemExit("daemon metrics have no step array: %s" % json.dumps(d)[:300])
    want = [r["step"] for r in ref]
    if want != list(range(len(ref))):
        problems.append("reference steps are not 0..%d" % (len(ref) - 1))
    if d.get("downsampled"):
        problems.append("daemon metrics are downsampled")
    if steps != want:
        seen = set()
        dups = sorted({s for s in steps if s in seen or seen.add(s)})
        missing = sorted(set(want) - set(steps))
        extra = sorted(set(steps) - set(want))
        problems.append("daemon has %d steps, reference %d; duplicated %s, missing %s, extra %s"
                        % (len(steps), len(want), dups[:10], missing[:10], extra[:10]))
    keys = sorted({k for r in ref for k in r} - {"time", "step"})
    for k in keys:
        if k not in d:
            problems.append("daemon metrics lack the column %r" % k)
    ndiff = 0
    first = []
    at = {s: i for i, s in enumerate(steps)}
    for r in ref:
        i = at.get(r["step"])
        if i is None:
            continue
        for k in keys:
            if k not in d or k not in r:
                continue
            col = d[k]
            if i >= len(col) or not same(r[k], col[i]):
                ndiff += 1
                if len(first) < 10:
                    first.append("step %d %s: vaed train %r, daemon %r"
                                 % (r["step"], k, r[k], col[i] if i < len(col) else "(missing)"))
    if ndiff:
        problems.append("%d figures differ; first ones:\n    %s" % (ndiff, "\n    ".join(first)))
    if problems:
        print("metrics differ from vaed train (%s vs %s):" % (ref_path, daemon_path))
        for p in problems:
            print("  " + p)
        return 1
    return 0


def cmd_test_elbo(summary_path, epochs_path, n_epochs):
    with open(summary_path) as f:
        s = json.load(f)
    with open(epochs_path) as f:
        e = json.load(f)["epochs"]
    n = int(n_epochs)
    problems = []
    for split in ("train", "test"):
        got = sorted(r["epoch"] for r in e if r["split"] == split)
        if got != list(range(1, n + 1)):
            problems.append("%s rows for epochs %s, wanted 1..%d" % (split, got, n))
    tests = [r for r in e if r["split"] == "test" and r["epoch"] == n]
    if not tests:
        problems.append("no test row for the last epoch")
    else:
        t = tests[0]
        for k in ("xent", "kl", "elbo"):
            if float("%.10g" % t[k]) != float(s["test"][k]):
                problems.append("test %s: daemon %r (%.10g), vaed train %r"
                                % (k, t[k], t[k], s["test"][k]))
        if t.get("active_units") != s["test"].get("active_units"):
            problems.append("active_units: daemon %r, vaed train %r"
                            % (t.get("active_units"), s["test"].get("active_units")))
    if problems:
        print("epoch figures differ from vaed train:")
        for p in problems:
            print("  " + p)
        return 1
    return 0


def cmd_same_rows(before_path, after_path):
    with open(before_path) as f:
        b = json.load(f)
    with open(after_path) as f:
        a = json.load(f)
    problems = []
    if len(set(a["step"])) != len(a["step"]):
        problems.append("AFTER repeats steps")
    at = {s: i for i, s in enumerate(a["step"])}
    cols = sorted(k for k in b if isinstance(b[k], list) and k not in ("step", "time"))
    ndiff = 0
    first = []
    for i, s in enumerate(b["step"]):
        j = at.get(s)
        if j is None:
            ndiff += 1
            if len(first) < 10:
                first.append("step %d is gone" % s)
            continue
        for k in cols:
            if k not in a or not same(b[k][i], a[k][j]):
                ndiff += 1
                if len(first) < 10:
                    first.append("step %d %s: before the crash %r, after %r"
                                 % (s, k, b[k][i], a[k][j] if k in a else "(no column)"))
    if ndiff:
        problems.append("%d figures differ; first ones:\n    %s" % (ndiff, "\n    ".join(first)))
    if problems:
        print("rows changed across the crash (%s vs %s):" % (before_path, after_path))
        for p in problems:
            print("  " + p)
        return 1
    return 0


def cmd_wal_tail(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        print("no WAL file")
        return 0
    if len(data) < 32:
        print("WAL empty")
        return 0
    page = struct.unpack(">I", data[8:12])[0]
    salt = data[16:24]
    off, frames, last_commit = 32, 0, 0
    while off + 24 + page <= len(data) and data[off + 8:off + 16] == salt:
        frames += 1
        if struct.unpack(">I", data[off + 4:off + 8])[0]:
            last_commit = frames
        off += 24 + page
    print("WAL: %d frames of this generation, %d after the last commit%s"
          % (frames, frames - last_commit,
             " (a transaction was being written)" if frames > last_commit else ""))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "metrics":
        return cmd_metrics(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "wal-tail":
        return cmd_wal_tail(argv[2])
    if len(argv) == 4 and argv[1] == "same-rows":
        return cmd_same_rows(argv[2], argv[3])
    if len(argv) == 5 and argv[1] == "test-elbo":
        return cmd_test_elbo(argv[2], argv[3], argv[4])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
