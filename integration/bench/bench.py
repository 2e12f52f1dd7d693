#!/usr/bin/env python3
"""bench.py - the driver behind bench.sh (run that, not this).

`bench.py run` expects a private containerd (CONTAINERD_ADDRESS / CONTAINERD_NAMESPACE from
containerd-up.sh's env file), RUNRS_BIN, E2E_CRUN, OUT, N. Runtimes are measured in the same
session and interleaved (A B C D A B C D ..., the order rotating every round) so that the
machine's noise falls on all of them alike. Figures are for comparison, never pass/fail.

`bench.py cycle ...` is the inner CLI-cycle loop, run under `unshare -m` when the cgroup2
mount must be hidden for crun.
"""
import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib

PREFIX = "runrs-bench"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_results(out, stem, res, text):
    """<out>/<stem>.json (everything measured) and <stem>.txt (the table), and print it."""
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(out, f"{stem}.txt"), "w") as f:
        f.write(text + "\n")
    print(text)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def summary(xs):
    return {
        "n": len(xs),
        "median": statistics.median(xs) if xs else None,
        "p90": pct(xs, 90) if xs else None,
        "min": min(xs) if xs else None,
        "max": max(xs) if xs else None,
    }


def timed(cmd, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, **kw)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
    return dt


# ---------------------------------------------------------------------------------------
# containerd side


class Ctr:
    """The runtimes as `ctr run` options, all against one private containerd."""

    def __init__(self):
        self.image = os.environ.get("E2E_IMAGE", "docker.io/library/busybox:latest")
        self.address = os.environ["CONTAINERD_ADDRESS"]
        self.runtimes = {
            "runrs": ["--runtime", "io.containerd.runrs.v2"],
            "runc": ["--runtime", "io.containerd.runc.v2"],
        }
        if os.environ.get("RS_SHIM_OK") == "1":
            self.runtimes["rs-shim+runc"] = ["--runtime", "io.containerd.runc.v2-rs"]
        crun = os.environ.get("E2E_CRUN")
        if crun and shutil.which("crun"):
            self.runtimes["runc-shim+crun"] = ["--runc-binary", crun]
        self.seq = 0

    def cid(self, rt, what):
        self.seq += 1
        tag = {"rs-shim+runc": "rsshim", "runc-shim+crun": "crun"}.get(rt, rt)
        return f"{PREFIX}-{tag}-{what}-{os.getpid()}-{self.seq}"

    def run_rm(self, rt, args=("/bin/true",)):
        return timed(["ctr", "run", "--rm", *self.runtimes[rt], self.image,
                      self.cid(rt, "rm"), *args])

    def run_detached(self, rt, cid, args=("sleep", "1000000")):
        return subprocess.Popen(["ctr", "run", "-d", *self.runtimes[rt], self.image, cid, *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    def remove(self, cids, par=8):
        """SIGKILL, delete and remove containers, `par` at a time."""
        def each(cmds):
            procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for c in cmds]
            for p in procs:
                p.wait(timeout=60)
        for i in range(0, len(cids), par):
            chunk = cids[i:i + par]
            each([["ctr", "task", "kill", "-s", "SIGKILL", c] for c in chunk])
            each([["ctr", "task", "delete", "-f", c] for c in chunk])
            each([["ctr", "container", "rm", c] for c in chunk])

    def leftovers(self):
        r = subprocess.run(["ctr", "container", "ls", "-q"], capture_output=True, text=True)
        return [c for c in r.stdout.split() if c.startswith(PREFIX)]

    def shims(self):
        """pid -> container id of every shim daemon serving our containerd."""
        out = {}
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    args = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "-address" not in args or "-id" not in args:
                continue
            i = args.index("-address")
            if i + 1 >= len(args) or args[i + 1] != self.address:
                continue
            if "start" in args or "delete" in args:
                continue
            out[int(p)] = args[args.index("-id") + 1]
        return out


def smaps(pid):
    d = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    d[parts[0][:-1]] = int(parts[1])
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    d["Threads"] = int(line.split()[1])
    except OSError:
        return None
    return d


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rotate(xs, i):
    i %= len(xs)
    return xs[i:] + xs[:i]


def phase_ctr_run(ctr, n, res):
    rts = list(ctr.runtimes)
    log(f"ctr run --rm /bin/true: {rts}, 3 warm-up + N={n} each, interleaved")
    for rt in rts:
        for _ in range(3):
            ctr.run_rm(rt)
    samples = {rt: [] for rt in rts}
    for i in range(n):
        for rt in rotate(rts, i):
            samples[rt].append(ctr.run_rm(rt))
    res["ctr_run"] = {rt: {**summary(s), "samples": s} for rt, s in samples.items()}


def start_many(ctr, rt, n, concurrent):
    cids = [ctr.cid(rt, "mem") for _ in range(n)]
    t0 = time.perf_counter()
    if concurrent:
        procs = [ctr.run_detached(rt, c) for c in cids]
        errs = [p.communicate(timeout=300)[1] for p in procs]
        rcs = [p.returncode for p in procs]
    else:
        errs, rcs = [], []
        for c in cids:
            p = ctr.run_detached(rt, c)
            errs.append(p.communicate(timeout=120)[1])
            rcs.append(p.returncode)
    wall = (time.perf_counter() - t0) * 1000
    bad = [e.decode()[-300:] for e, rc in zip(errs, rcs) if rc != 0]
    return cids, wall, bad


def shim_memory(ctr, cids):
    """smaps_rollup of the shims serving `cids` (several containers may share one)."""
    want = set(cids)
    per = {}
    for pid, cid in ctr.shims().items():
        if cid in want:
            m = smaps(pid)
            if m:
                per[pid] = m
    rss = [m["Rss"] for m in per.values()]
    pss = [m["Pss"] for m in per.values()]
    return {
        "containers": len(cids),
        "shims": len(per),
        "rss_kb_median": statistics.median(rss) if rss else None,
        "pss_kb_median": statistics.median(pss) if pss else None,
        "rss_kb_total": sum(rss),
        "pss_kb_total": sum(pss),
        "threads_median": statistics.median([m.get("Threads", 0) for m in per.values()]) if per else None,
        "per_shim": list(per.values()),
    }


# Memory is read once the shims are idle: runrs' blocking-pool thread (Create, Start)
# exits 5 s after its last job, and a running container's shim is idle for most of its
# life. The same wait applies to every runtime.
SETTLE_S = 6


def phase_mem(ctr, res, rm_samples):
    """Per runtime: shim memory at 1 and 10 containers (started one by one), then 50
    started concurrently (wall time until `ctr run -d` returned for all = all running),
    their memory, and `ctr run --rm` latency while the 50 run."""
    res["mem"], res["start50"], res["ctr_run_with_50"] = {}, {}, {}
    for rt in ctr.runtimes:
        log(f"memory + 50 concurrent starts: {rt}")
        cids, _, bad = start_many(ctr, rt, 1, False)
        time.sleep(SETTLE_S)
        m1 = shim_memory(ctr, cids)
        more, _, bad2 = start_many(ctr, rt, 9, False)
        time.sleep(SETTLE_S)
        m10 = shim_memory(ctr, cids + more)
        ctr.remove(cids + more)
        time.sleep(1)
        many, wall, bad3 = start_many(ctr, rt, 50, True)
        time.sleep(SETTLE_S)
        m50 = shim_memory(ctr, many)
        lat = [ctr.run_rm(rt) for _ in range(rm_samples)]
        ctr.remove(many)
        for b in bad + bad2 + bad3:
            log(f"  {rt}: a start failed: {b}")
        res["mem"][rt] = {"1": m1, "10": m10, "50": m50}
        res["start50"][rt] = {"wall_ms": wall, "failed": len(bad3)}
        res["ctr_run_with_50"][rt] = {**summary(lat), "samples": lat}
        left = ctr.leftovers()
        if left:
            log(f"  leftover containers after {rt}: {left}")
            ctr.remove(left)


def phase_exec(ctr, n, res):
    rts = list(ctr.runtimes)
    log(f"ctr task exec true: N={n} each, interleaved")
    cids = {}
    for rt in rts:
        c, _, bad = start_many(ctr, rt, 1, False)
        if bad:
            raise RuntimeError(f"{rt}: {bad}")
        cids[rt] = c[0]
    samples = {rt: [] for rt in rts}
    try:
        for rt in rts:
            timed(["ctr", "task", "exec", "--exec-id", "warm", cids[rt], "true"])
        for i in range(n):
            for rt in rotate(rts, i):
                samples[rt].append(timed(["ctr", "task", "exec", "--exec-id", f"e{i}",
                                          cids[rt], "true"]))
    finally:
        ctr.remove(list(cids.values()))
    res["exec"] = {rt: {**summary(s), "samples": s} for rt, s in samples.items()}


def stream_once(ctr, rt, nbytes):
    cid = ctr.cid(rt, "io")
    cmd = ["ctr", "run", "--rm", *ctr.runtimes[rt], ctr.image, cid,
           "dd", "if=/dev/zero", "bs=1M", f"count={nbytes >> 20}"]
    peak = {"rss": 0, "samples": 0}
    stop = threading.Event()

    def sample():
        pid = None
        while not stop.is_set():
            if pid is None:
                pid = next((p for p, c in ctr.shims().items() if c == cid), None)
            if pid is not None:
                r = rss_kb(pid)
                if r:
                    peak["rss"] = max(peak["rss"], r)
                    peak["samples"] += 1
            stop.wait(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    t.start()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got, crc = 0, 0
    while True:
        k = p.stdout.readinto(buf)
        if not k:
            break
        crc = zlib.crc32(view[:k], crc)
        got += k
    err = p.stderr.read()
    p.wait()
    dt = time.perf_counter() - t0
    stop.set()
    t.join()
    return got, crc, dt, peak, p.returncode, err.decode()[-300:]


def phase_throughput(ctr, res, mib, reps):
    nbytes = mib << 20
    zero = bytes(1 << 20)
    want = 0
    for _ in range(mib):
        want = zlib.crc32(zero, want)
    log(f"stdout throughput: dd {mib} MiB of zeros to stdout, read from ctr, {reps} runs each, interleaved")
    out = {rt: [] for rt in ctr.runtimes}
    for i in range(reps):
        for rt in rotate(list(ctr.runtimes), i):
            got, crc, dt, peak, rc, err = stream_once(ctr, rt, nbytes)
            ok = got == nbytes and crc == want and rc == 0
            if not ok:
                log(f"  {rt}: got {got} bytes crc {crc:#x} (want {want:#x}) rc {rc}: {err}")
            out[rt].append({"mb_s": nbytes / 1e6 / dt, "seconds": dt, "ok": ok,
                            "shim_peak_rss_kb": peak["rss"], "rss_samples": peak["samples"]})
    res["throughput"] = {
        rt: {"mb_s_median": statistics.median([r["mb_s"] for r in runs]),
             "shim_peak_rss_kb": max(r["shim_peak_rss_kb"] for r in runs),
             "all_ok": all(r["ok"] for r in runs), "runs": runs}
        for rt, runs in out.items()
    }


# ---------------------------------------------------------------------------------------
# runtime CLI side (create + start + wait + delete of a bundle)


def make_bundle(dirpath):
    here = os.path.dirname(os.path.abspath(__file__))
    mk = os.path.join(here, "..", "scripts", "make-busybox-image.sh")
    rootfs = os.path.join(dirpath, "rootfs")
    subprocess.run([mk, os.path.join(dirpath, "unused.tar")], check=True,
                   env={**os.environ, "ROOTFS_DIR": rootfs}, stdout=subprocess.DEVNULL)
    os.unlink(os.path.join(dirpath, "unused.tar"))
    subprocess.run(["runc", "spec"], cwd=dirpath, check=True)
    with open(os.path.join(dirpath, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["true"]
    cfg["process"]["terminal"] = False
    cfg["root"]["path"] = "rootfs"
    cfg["linux"]["cgroupsPath"] = f"/{PREFIX}-cycle/c"
    with open(os.path.join(dirpath, "config.json"), "w") as f:
        json.dump(cfg, f)


def cycle_inner(args):
    """Runs inside the chosen cgroup view; prints JSON {runtime: [ms, ...]}."""
    if args.hide_cgroup2:
        subprocess.run(["umount", "/sys/fs/cgroup/unified"], check=True)
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    rts = dict(kv.split("=", 1) for kv in args.runtimes.split(","))
    names = list(rts)
    samples = {n: [] for n in names}
    seq = [0]

    def one(name):
        root = f"/run/{PREFIX}-cli-{name}"
        os.makedirs(root, exist_ok=True)
        pidfile = os.path.join(root, "pidfile")
        seq[0] += 1
        cid = f"{PREFIX}-cycle-{os.getpid()}-{seq[0]}"

        def rt(*a):
            subprocess.run([rts[name], "--root", root, *a], check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL)
        t0 = time.perf_counter()
        rt("create", "--bundle", args.bundle, "--pid-file", pidfile, cid)
        with open(pidfile) as f:
            pid = int(f.read())
        rt("start", cid)
        os.waitpid(pid, 0)   # init is reparented to us (subreaper)
        rt("delete", cid)
        dt = (time.perf_counter() - t0) * 1000
        os.unlink(pidfile)
        os.rmdir(root) if not os.listdir(root) else None
        return dt

    for n in names:
        for _ in range(3):
            one(n)
    for i in range(args.n):
        for n in rotate(names, i):
            samples[n].append(one(n))
    print(json.dumps(samples))


def phase_cli(n, res, runrs_bin):
    hybrid = bool(open("/sys/fs/cgroup/unified/cgroup.controllers").read().strip()) \
        if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers") else False
    base = {"runrs": runrs_bin, "runc": shutil.which("runc") or "/usr/sbin/runc"}
    crun = shutil.which("crun")
    views = []
    if hybrid:
        # crun refuses a hybrid host whose cgroup2 has controllers: compare all three with
        # cgroup2 hidden (pure v1 view), and runrs vs runc in the host's own view.
        views.append(("v1 (cgroup2 hidden)", True, {**base, **({"crun": crun} if crun else {})}))
        views.append(("hybrid (host)", False, base))
    else:
        views.append(("host", False, {**base, **({"crun": crun} if crun else {})}))
    bdir = tempfile.mkdtemp(prefix=f"{PREFIX}-bundle-", dir="/tmp")
    try:
        make_bundle(bdir)
        res["cli_cycle"] = {}
        for view, hide, rts in views:
            log(f"CLI create+start+wait+delete, view {view}: {list(rts)}, N={n} each, interleaved")
            cmd = [sys.executable, os.path.abspath(__file__), "cycle", "--bundle", bdir,
                   "-n", str(n), "--runtimes", ",".join(f"{k}={v}" for k, v in rts.items())]
            if hide:
                cmd = ["unshare", "-m", "--propagation", "private", *cmd, "--hide-cgroup2"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                log(f"  cycle failed: {r.stderr[-800:]}")
                continue
            s = json.loads(r.stdout)
            res["cli_cycle"][view] = {k: {**summary(v), "samples": v} for k, v in s.items()}
    finally:
        shutil.rmtree(bdir, ignore_errors=True)
        for d in os.listdir("/sys/fs/cgroup"):
            p = f"/sys/fs/cgroup/{d}/{PREFIX}-cycle"
            for sub in (f"{p}/c", p):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


# ---------------------------------------------------------------------------------------
# report


def table(res):
    lines = []
    add = lines.append
    add(f"load average at start: {res['load_start']}   at end: {res.get('load_end', '?')}")
    add(f"N={res['n']}  runtimes: {', '.join(res['runtimes'])}")

    def row(name, cells):
        add(f"{name:<44}" + "".join(f"{c:>16}" for c in cells))
    rts = res["runtimes"]
    row("", rts)
    ref = "runc"

    def ratio(d, rt, key="median"):
        try:
            return f" ({d[rt][key] / d[ref][key]:.2f}x)"
        except (KeyError, TypeError, ZeroDivisionError):
            return ""

    if "ctr_run" in res:
        d = res["ctr_run"]
        row("ctr run --rm /bin/true median ms", [f"{d[r]['median']:.1f}{ratio(d, r)}" if r in d else "-" for r in rts])
        row("ctr run --rm /bin/true p90 ms", [f"{d[r]['p90']:.1f}" if r in d else "-" for r in rts])
    if "ctr_run_with_50" in res:
        d = res["ctr_run_with_50"]
        row("  same, with 50 running, median ms", [f"{d[r]['median']:.1f}" if r in d else "-" for r in rts])
    for view, d in res.get("cli_cycle", {}).items():
        add(f"CLI create+start+wait+delete, view {view} (median / p90 ms):")
        for k, v in d.items():
            add(f"    {k:<10} {v['median']:7.1f} / {v['p90']:7.1f}   min {v['min']:.1f}")
    if "mem" in res:
        for n in ("1", "10", "50"):
            d = res["mem"]
            row(f"shim RSS/PSS KiB per shim, {n} running",
                [f"{d[r][n]['rss_kb_median']:.0f}/{d[r][n]['pss_kb_median']:.0f}"
                 if r in d and d[r][n]['rss_kb_median'] else "-" for r in rts])
            row(f"  total RSS/PSS MiB ({n} running)",
                [f"{d[r][n]['rss_kb_total'] / 1024:.1f}/{d[r][n]['pss_kb_total'] / 1024:.1f}"
                 if r in d else "-" for r in rts])
        row("  shim processes / threads at 50",
            [f"{d[r]['50']['shims']}/{d[r]['50']['threads_median']}" if r in d else "-" for r in rts])
    if "start50" in res:
        d = res["start50"]
        row("50 concurrent starts, wall ms", [f"{d[r]['wall_ms']:.0f}" + (f" ({d[r]['failed']} failed)" if d[r]['failed'] else "")
                                               if r in d else "-" for r in rts])
    if "exec" in res:
        d = res["exec"]
        row("ctr task exec true median ms", [f"{d[r]['median']:.1f}{ratio(d, r)}" if r in d else "-" for r in rts])
        row("ctr task exec true p90 ms", [f"{d[r]['p90']:.1f}" if r in d else "-" for r in rts])
    if "throughput" in res:
        d = res["throughput"]
        row("stdout throughput MB/s (median)", [f"{d[r]['mb_s_median']:.0f}" + ("" if d[r]['all_ok'] else " BAD")
                                                 if r in d else "-" for r in rts])
        row("  shim peak RSS while streaming KiB", [f"{d[r]['shim_peak_rss_kb']}" if r in d else "-" for r in rts])
    return "\n".join(lines)


def chart(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed (pip install matplotlib): no chart")
        return False
    rts = res["runtimes"]
    colors = {"runrs": "#d9480f", "runc": "#1c7ed6", "rs-shim+runc": "#2f9e44",
              "runc-shim+crun": "#7048e8", "crun": "#7048e8"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    fig.suptitle(f"runrs benchmark  (N={res['n']}, load {res['load_start']} -> {res.get('load_end', '?')})")

    def bars(ax, title, names, vals, errs=None, unit="ms"):
        xs = range(len(names))
        ax.bar(xs, vals, yerr=errs, color=[colors.get(n, "#868e96") for n in names], capsize=4)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=15, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        for x, v in zip(xs, vals):
            ax.annotate(f"{v:.0f}" if v >= 10 else f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=8)

    def med_p90(d, names):
        med = [d[n]["median"] for n in names]
        return med, [[0] * len(names), [d[n]["p90"] - d[n]["median"] for n in names]]

    ax = axes[0][0]
    if "ctr_run" in res:
        names = [r for r in rts if r in res["ctr_run"]]
        m, e = med_p90(res["ctr_run"], names)
        bars(ax, "ctr run --rm /bin/true (median, bar to p90)", names, m, e)
    ax = axes[0][1]
    cyc = res.get("cli_cycle", {})
    if cyc:
        view, d = next(iter(cyc.items()))
        names = list(d)
        m, e = med_p90(d, names)
        bars(ax, f"CLI create+start+wait+delete\n(view: {view})", names, m, e)
    ax = axes[0][2]
    if "mem" in res:
        names = [r for r in rts if r in res["mem"]]
        w = 0.13
        for j, n in enumerate(("1", "10", "50")):
            for k, key in enumerate(("rss_kb_median", "pss_kb_median")):
                vals = [(res["mem"][r][n][key] or 0) / 1024 for r in names]
                off = (j * 2 + k - 2.5) * w
                ax.bar([i + off for i in range(len(names))], vals, w,
                       label=f"{'RSS' if k == 0 else 'PSS'} @{n}",
                       color=plt.cm.Blues(0.4 + 0.2 * j) if k == 0 else plt.cm.Oranges(0.4 + 0.2 * j))
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=15, fontsize=8)
        ax.set_title("shim memory per shim (median), 1 / 10 / 50 running", fontsize=10)
        ax.set_ylabel("MiB")
        ax.legend(fontsize=7, ncol=3)
    ax = axes[1][0]
    if "start50" in res:
        names = [r for r in rts if r in res["start50"]]
        bars(ax, "50 containers started concurrently: wall time", names,
             [res["start50"][r]["wall_ms"] for r in names])
    ax = axes[1][1]
    if "exec" in res:
        names = [r for r in rts if r in res["exec"]]
        m, e = med_p90(res["exec"], names)
        bars(ax, "ctr task exec ... true (median, bar to p90)", names, m, e)
    ax = axes[1][2]
    if "throughput" in res:
        names = [r for r in rts if r in res["throughput"]]
        bars(ax, "stdout throughput through ctr", names,
             [res["throughput"][r]["mb_s_median"] for r in names], unit="MB/s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def main_run():
    n = int(os.environ.get("N", "30"))
    out = os.environ.get("OUT", "/tmp/runrs-bench-results")
    phases = os.environ.get("PHASES", "ctr-run cli mem exec throughput").split()
    os.makedirs(out, exist_ok=True)
    ctr = Ctr()
    res = {"n": n, "load_start": loadavg(), "runtimes": list(ctr.runtimes),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": os.uname().release,
           "nproc": os.cpu_count()}
    log(f"load average {res['load_start']}; runtimes {res['runtimes']}")
    steps = {
        "ctr-run": lambda: phase_ctr_run(ctr, n, res),
        "cli": lambda: phase_cli(n, res, os.environ["RUNRS_BIN"]),
        "mem": lambda: phase_mem(ctr, res, int(os.environ.get("RM_WITH_50", "15"))),
        "exec": lambda: phase_exec(ctr, n, res),
        "throughput": lambda: phase_throughput(ctr, res, int(os.environ.get("THROUGHPUT_MIB", "1024")),
                                               int(os.environ.get("THROUGHPUT_REPS", "3"))),
    }
    try:
        for p in phases:
            try:
                steps[p]()
            except Exception as e:  # a broken phase is reported, the others still run
                log(f"phase {p} failed: {e}")
                res.setdefault("errors", {})[p] = str(e)
                left = ctr.leftovers()
                if left:
                    ctr.remove(left)
    finally:
        res["load_end"] = loadavg()
        write_results(out, "bench", res, table(res))
        if chart(res, os.path.join(out, "bench.png")):
            log(f"wrote {out}/bench.json, {out}/bench.txt, {out}/bench.png")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run")
    c = sub.add_parser("cycle")
    c.add_argument("--bundle", required=True)
    c.add_argument("-n", type=int, default=30)
    c.add_argument("--runtimes", required=True)
    c.add_argument("--hide-cgroup2", action="store_true")
    args = ap.parse_args()
    if args.cmd == "run":
        main_run()
    else:
        cycle_inner(args)


if __name__ == "__main__":
    main()
