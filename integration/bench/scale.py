#!/usr/bin/env python3
"""scale.py - the scale benchmark of issue 17 (run `bench.sh scale`, not this).

Per runtime (runrs, then the runc-v2 shim as the reference), one after the other on the
private containerd bench.sh starts:

  seq    SCALE_N sequential `ctr run --rm busybox true`: total wall time, mean/p50/p95 per run.
  many   SCALE_N `sleep` containers running at once, started SCALE_PAR at a time (`ctr run -d`):
         start-all wall time; SETTLE_S later (idle shims, as in the mem phase) the shims'
         PSS and RSS (smaps_rollup), threads and fds, containerd's RSS and fds; then
         stop-all wall time (`ctr task rm -f` = SIGKILL + wait + delete, and `ctr container
         rm`, SCALE_PAR at a time).
  leaks  nothing of the namespace may remain: shim processes, processes in its cgroups or
         naming its containers, mounts of its bundles, cgroups under /<ns> in any hierarchy,
         state dirs in /run/containerd/{runrs,runc}/<ns>, bundles, shim sockets, fifo dirs in
         /run/containerd/fifo, containers, tasks, active snapshots; containerd's fd count back
         to its baseline (+FD_SLACK). Checked until clean, for up to LEAK_WAIT_S.

Figures are never asserted. The exit status is 1 if a leak was found or a container
operation failed (the figures are written all the same).
"""
import concurrent.futures
import hashlib
import os
import re
import statistics
import subprocess
import sys
import time

from bench import PREFIX, SETTLE_S, Ctr, loadavg, log, pct, smaps, write_results

FIFO_ROOT = "/run/containerd/fifo"
SOCKET_ROOT = "/run/containerd/s"
STATE_ROOTS = ("/run/containerd/runrs", "/run/containerd/runc")
FD_SLACK = 5        # containerd descriptors allowed above the baseline afterwards
LEAK_WAIT_S = 30    # exited shims and their connections take a moment to go
NAMES = {"runrs": "runrs", "runc": "runc-v2"}


def dist(xs):
    """Total, mean, p50, p95, max of a list of milliseconds."""
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "total_ms": sum(xs), "mean": statistics.fmean(xs),
            "p50": pct(xs, 50), "p95": pct(xs, 95), "max": max(xs)}


def tenths(xs):
    """p50 of the first and of the last tenth of `xs` (in the order they were taken)."""
    k = max(1, len(xs) // 10)
    return {"first_p50": pct(xs[:k], 50), "last_p50": pct(xs[-k:], 50)} if xs else {}


def run_cmd(cmd, timeout=300):
    """(ms, exit code, stderr tail) of one command; never raises."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout)
        rc, err = r.returncode, r.stderr.decode(errors="replace")[-300:].strip()
    except subprocess.TimeoutExpired:
        rc, err = -1, f"timed out after {timeout} s"
    return (time.perf_counter() - t0) * 1000, rc, err


def bounded(fn, items, par):
    """fn over items, `par` at a time: (wall ms, results in order)."""
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=par) as ex:
        out = list(ex.map(fn, items))
    return (time.perf_counter() - t0) * 1000, out


def meminfo(key="MemAvailable"):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def fds(pid):
    """(open descriptors, inotify instances among them) of process `pid`."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, 0
    ino = 0
    for n in names:
        try:
            ino += os.readlink(f"/proc/{pid}/fd/{n}") == "anon_inode:inotify"
        except OSError:
            pass
    return len(names), ino


def proc_view(pid):
    """containerd as the host sees it: RSS, threads, descriptors."""
    m = smaps(pid) or {}
    n, _ = fds(pid)
    return {"rss_kb": m.get("Rss"), "pss_kb": m.get("Pss"), "threads": m.get("Threads"), "fds": n}


def nofile_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return line.split()[3]
    except OSError:
        pass
    return "?"


class Host:
    """What of one containerd namespace exists on the host, as findings (strings)."""

    def __init__(self, ctr, ns, e2e_dir):
        self.ctr, self.ns = ctr, ns
        self.bundles = os.path.join(e2e_dir, "state", "io.containerd.runtime.v2.task", ns)
        self.ids = set()   # every container id used, for the shim socket names
        # Ids are Ctr.cid's "<PREFIX>-<runtime>-<what>-<our pid>-<n>".
        self.id_re = re.compile(rf"{re.escape(PREFIX)}-[\w+]+-\w+-{os.getpid()}-\d+")

    def socket(self, cid):
        """The shim's socket for `cid`: sha256 of "<address>/<ns>/<id>" (shim.SocketAddress)."""
        h = hashlib.sha256(os.path.join(self.ctr.address, self.ns, cid).encode()).hexdigest()
        return os.path.join(SOCKET_ROOT, h)

    def cgroup_mounts(self):
        out = set()
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split()[0] in ("cgroup", "cgroup2"):
                    out.add(left.split()[4])
        return sorted(out)

    def fifo_dirs(self):
        try:
            return set(os.listdir(FIFO_ROOT))
        except OSError:
            return set()

    def findings(self, fifo_base):
        found = []
        ns_cg = f"/{self.ns}/"
        for line in self.ctr_lines(["task", "ls", "-q"]):
            found.append(f"task {line}")
        for line in self.ctr_lines(["container", "ls", "-q"]):
            found.append(f"container {line}")
        for line in self.ctr_lines(["snapshot", "ls"])[1:]:
            parts = line.split()
            if parts and parts[-1].lower() == "active":
                found.append(f"active snapshot {parts[0]}")
        for pid, cid in self.ctr.shims().items():
            found.append(f"shim process {pid} (-id {cid})")
        me = os.getpid()
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == me:
                continue
            try:
                with open(f"/proc/{p}/cgroup") as f:
                    cg = [ln.split(":", 2)[2].strip() for ln in f if ln.count(":") >= 2]
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if any(c.startswith(ns_cg) for c in cg) or self.id_re.search(cmd):
                found.append(f"process {p} ({cmd[:120]!r}) cgroup {sorted(set(cg))[:2]}")
        with open("/proc/self/mountinfo") as f:
            for line in f:
                if f"/io.containerd.runtime.v2.task/{self.ns}/" in line or self.id_re.search(line):
                    found.append(f"mount {line.split(' - ')[0].split()[4]}")
        for mp in self.cgroup_mounts():
            d = os.path.join(mp, self.ns)
            try:
                subs = [e.name for e in os.scandir(d) if e.is_dir()]
            except OSError:
                continue
            found.extend(f"cgroup {d}/{s}" for s in subs)
        for root in (*(os.path.join(r, self.ns) for r in STATE_ROOTS), self.bundles):
            try:
                found.extend(f"state dir {root}/{e}" for e in os.listdir(root))
            except OSError:
                pass
        found.extend(f"shim socket {s}" for s in map(self.socket, sorted(self.ids))
                     if os.path.exists(s))
        for d in sorted(self.fifo_dirs() - fifo_base):
            try:
                inside = os.listdir(os.path.join(FIFO_ROOT, d))
            except OSError:
                continue
            found.append(f"fifo dir {FIFO_ROOT}/{d} {sorted(inside)[:3]}")
        return found

    def ctr_lines(self, args):
        r = subprocess.run(["ctr", *args], capture_output=True, text=True)
        return [ln for ln in r.stdout.splitlines() if ln.strip()]


def running_tasks():
    r = subprocess.run(["ctr", "task", "ls"], capture_output=True, text=True)
    return sum(1 for ln in r.stdout.splitlines()[1:] if ln.split()[-1:] == ["RUNNING"])


def shim_view(ctr, cids):
    """Memory, threads and descriptors of the shims serving `cids`."""
    want = set(cids)
    per = []
    for pid, cid in ctr.shims().items():
        if cid not in want:
            continue
        m = smaps(pid)
        if not m:
            continue
        m["fds"], m["inotify"] = fds(pid)
        per.append(m)

    def total(k):
        return sum(m.get(k, 0) for m in per)
    return {
        "shims": len(per),
        "pss_kb_total": total("Pss"), "rss_kb_total": total("Rss"),
        "pss_kb_per_container": total("Pss") / len(cids) if cids else None,
        "rss_kb_median": statistics.median([m["Rss"] for m in per]) if per else None,
        "anon_kb_median": statistics.median([m.get("Anonymous", 0) for m in per]) if per else None,
        "threads_total": total("Threads"), "fds_total": total("fds"),
        "inotify_total": total("inotify"),
    }


def one_runtime(ctr, host, rt, n, par, containerd):
    res = {"load_start": loadavg()}
    failures = []
    argv = ctr.runtimes[rt]

    def new_id(what):
        cid = ctr.cid(rt, what)
        host.ids.add(cid)
        return cid

    def run_rm():
        return run_cmd(["ctr", "run", "--rm", *argv, ctr.image, new_id("seq"), "true"])

    log(f"{rt}: 3 warm-up runs, baseline")
    for _ in range(3):
        _, rc, err = run_rm()
        if rc:
            raise RuntimeError(f"{rt}: warm-up ctr run --rm failed: {err}")
    time.sleep(1)
    fifo_base = host.fifo_dirs()
    before = host.findings(fifo_base)
    if before:
        log(f"  {rt}: present before the run (not counted as leaks): {before[:10]}")
    res["containerd_base"] = proc_view(containerd)
    mem_base = meminfo()

    log(f"{rt}: {n} sequential ctr run --rm true")
    t0 = time.perf_counter()
    seq = [run_rm() for _ in range(n)]
    res["seq_wall_ms"] = (time.perf_counter() - t0) * 1000
    ok = [ms for ms, rc, _ in seq if rc == 0]
    res["seq"] = {**dist(ok), **tenths(ok), "samples": ok}
    failures += [f"ctr run --rm: {err}" for _, rc, err in seq if rc]
    res["seq_failed"] = sum(1 for _, rc, _ in seq if rc)

    cids = [new_id("many") for _ in range(n)]
    log(f"{rt}: start {n} sleep containers, {par} at a time")
    res["start_wall_ms"], starts = bounded(
        lambda c: run_cmd(["ctr", "run", "-d", *argv, ctr.image, c, "sleep", "1000000"]), cids, par)
    ok = [ms for ms, rc, _ in starts if rc == 0]
    res["start"] = {**dist(ok), **tenths(ok), "samples": ok}
    res["start_failed"] = sum(1 for _, rc, _ in starts if rc)
    failures += [f"ctr run -d: {err}" for _, rc, err in starts if rc]
    res["load_at_n"] = loadavg()
    time.sleep(SETTLE_S)
    res["running"] = running_tasks()
    res["shims"] = shim_view(ctr, cids)
    res["containerd_at_n"] = proc_view(containerd)
    res["mem_available_drop_kb"] = mem_base - meminfo()
    log(f"  {res['running']} running, {res['shims']['shims']} shims, "
        f"PSS {res['shims']['pss_kb_total'] / 1024:.0f} MiB, load {res['load_at_n']}")

    def stop(c):
        ms1, rc1, err1 = run_cmd(["ctr", "task", "rm", "-f", c])
        ms2, rc2, err2 = run_cmd(["ctr", "container", "rm", c])
        return ms1 + ms2, rc1 or rc2, err1 or err2
    log(f"{rt}: stop {n} containers (task rm -f + container rm), {par} at a time")
    res["stop_wall_ms"], stops = bounded(stop, cids, par)
    ok = [ms for ms, rc, _ in stops if rc == 0]
    res["stop"] = {**dist(ok), **tenths(ok), "samples": ok}
    res["stop_failed"] = sum(1 for _, rc, _ in stops if rc)
    failures += [f"stop: {err}" for _, rc, err in stops if rc]

    log(f"{rt}: leak check (up to {LEAK_WAIT_S} s)")
    base_fds = res["containerd_base"]["fds"]
    t0 = time.perf_counter()
    while True:
        after = proc_view(containerd)
        leaks = [f for f in host.findings(fifo_base) if f not in before]
        if after["fds"] > base_fds + FD_SLACK:
            leaks.append(f"containerd has {after['fds']} fds, {base_fds} before the run")
        if not leaks or time.perf_counter() - t0 > LEAK_WAIT_S:
            break
        time.sleep(1)
    res["leak_check_s"] = time.perf_counter() - t0
    # The figure reported for "after": read again once the connections of the ctr commands
    # above are closed on containerd's side too (a few of them linger for a moment).
    time.sleep(2)
    res["containerd_after"] = proc_view(containerd)
    res["leaks"] = leaks
    res["failures"] = failures
    res["load_end"] = loadavg()
    for f in leaks[:40]:
        log(f"  {rt}: LEAK {f}")
    if len(leaks) > 40:
        log(f"  {rt}: ... {len(leaks) - 40} more")
    for f in failures[:10]:
        log(f"  {rt}: FAILED {f}")
    if not leaks:
        log(f"  {rt}: clean after {res['leak_check_s']:.1f} s")
    left = ctr.leftovers()
    if left:   # so that the next runtime starts from a clean namespace
        ctr.remove(left)
    return res


def preflight(n, containerd):
    """The host's limits, and which of them N running containers would hit."""
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    tasks = 0
    for p in pids:
        try:
            tasks += len(os.listdir(f"/proc/{p}/task"))
        except OSError:
            pass
    host = {
        "pid_max": read_int("/proc/sys/kernel/pid_max"),
        "threads_max": read_int("/proc/sys/kernel/threads-max"),
        "tasks_now": tasks,
        "processes_now": len(pids),
        "inotify_max_user_instances": read_int("/proc/sys/fs/inotify/max_user_instances"),
        "containerd_nofile": nofile_limit(containerd),
        "mem_available_kb": meminfo(),
        "nproc": os.cpu_count(),
        "kernel": os.uname().release,
    }
    # runc-v2 shims idle with 12 threads; + the sleep, + room for runc/ctr/publish
    # processes while starting. Memory: ~3 MiB PSS per runc shim, kernel and containerd.
    need_tasks, need_kb = host["tasks_now"] + 16 * n, 8 * 1024 * n + 2 * 1024 * 1024
    problems = []
    if host["pid_max"] and need_tasks > host["pid_max"]:
        problems.append(f"pid_max {host['pid_max']} < ~{need_tasks} tasks needed "
                        f"(sysctl kernel.pid_max, or a lower SCALE_N)")
    if host["mem_available_kb"] < need_kb:
        problems.append(f"MemAvailable {host['mem_available_kb'] >> 10} MiB < ~{need_kb >> 10} "
                        f"MiB needed: lower SCALE_N")
    return host, problems


def fmt_table(res):
    rts = res["runtimes"]
    lines = []
    add = lines.append
    h = res["host"]
    add(f"scale: N={res['n']} containers per runtime, concurrency {res['par']}, "
        f"{h['nproc']} CPUs, kernel {h['kernel']}, containerd {res['containerd_version']}")
    add(f"load average: {res['load_start']} at start, {res['load_end']} at end; "
        f"MemAvailable at start {h['mem_available_kb'] >> 20} GiB; containerd nofile "
        f"{h['containerd_nofile']}, pid_max {h['pid_max']}")
    add(f"runrs shim: {res['runrs_shim']['path']} (sha256 {res['runrs_shim']['sha256'][:12]})")

    def row(name, cells):
        add(f"{name:<46}" + "".join(f"{c:>20}" for c in cells))
    row("", [NAMES.get(r, r) for r in rts])
    d = {r: res["results"][r] for r in rts if r in res["results"]}

    def cells(f):
        out = []
        for r in rts:
            try:
                out.append(f(d[r]))
            except (KeyError, TypeError, ZeroDivisionError):
                out.append("-")
        return out

    row("load average (1 min) at start / at N",
        cells(lambda x: f"{x['load_start'].split()[0]} / {x['load_at_n'].split()[0]}"))
    row(f"{res['n']} x ctr run --rm true: total s",
        cells(lambda x: f"{x['seq_wall_ms'] / 1000:.1f}"))
    row("  per run mean / p50 / p95 ms",
        cells(lambda x: f"{x['seq']['mean']:.0f} / {x['seq']['p50']:.0f} / {x['seq']['p95']:.0f}"))
    row(f"start {res['n']} sleep, {res['par']} at a time: wall s",
        cells(lambda x: f"{x['start_wall_ms'] / 1000:.1f}"))
    row("  containers started per s",
        cells(lambda x: f"{x['start']['n'] / x['start_wall_ms'] * 1000:.1f}"))
    row("  per ctr run -d p50 / p95 ms",
        cells(lambda x: f"{x['start']['p50']:.0f} / {x['start']['p95']:.0f}"))
    row("  p50 of the first / last tenth of starts ms",
        cells(lambda x: f"{x['start']['first_p50']:.0f} / {x['start']['last_p50']:.0f}"))
    row("  running at once (ctr task ls) / shims",
        cells(lambda x: f"{x['running']} / {x['shims']['shims']}"))
    row("shim PSS total MiB / per container KiB",
        cells(lambda x: f"{x['shims']['pss_kb_total'] / 1024:.0f} / {x['shims']['pss_kb_per_container']:.0f}"))
    row("shim RSS total MiB / per shim (median) KiB",
        cells(lambda x: f"{x['shims']['rss_kb_total'] / 1024:.0f} / {x['shims']['rss_kb_median']:.0f}"))
    row("shim threads / fds, all shims",
        cells(lambda x: f"{x['shims']['threads_total']} / {x['shims']['fds_total']}"))
    row("containerd RSS MiB: before / at N / after",
        cells(lambda x: "{:.0f} / {:.0f} / {:.0f}".format(
            *(x[k]["rss_kb"] / 1024 for k in ("containerd_base", "containerd_at_n", "containerd_after")))))
    row("containerd fds: before / at N / after",
        cells(lambda x: "{} / {} / {}".format(
            *(x[k]["fds"] for k in ("containerd_base", "containerd_at_n", "containerd_after")))))
    row(f"stop {res['n']} (task rm -f + container rm): wall s",
        cells(lambda x: f"{x['stop_wall_ms'] / 1000:.1f}"))
    row("  per container p50 / p95 ms",
        cells(lambda x: f"{x['stop']['p50']:.0f} / {x['stop']['p95']:.0f}"))
    row("failed: run --rm / run -d / stop",
        cells(lambda x: f"{x['seq_failed']} / {x['start_failed']} / {x['stop_failed']}"))
    row("leak check",
        cells(lambda x: f"{len(x['leaks'])} LEAKS" if x["leaks"] else f"clean ({x['leak_check_s']:.1f} s)"))
    for r, e in res.get("errors", {}).items():
        add(f"{r}: phase failed: {e}")
    return "\n".join(lines)


def main():
    n = int(os.environ.get("SCALE_N", "1000"))
    par = int(os.environ.get("SCALE_PAR", "16"))
    out = os.environ.get("OUT", "/tmp/runrs-bench-results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(os.environ["E2E_DIR"], "containerd.pid")) as f:
        containerd = int(f.read())
    ctr = Ctr()
    rts = os.environ.get("SCALE_RUNTIMES", "runrs runc").split()
    host = Host(ctr, os.environ["CONTAINERD_NAMESPACE"], os.environ["E2E_DIR"])
    ver = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()
    res = {"n": n, "par": par, "runtimes": rts, "load_start": loadavg(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "containerd_version": ver[2] if len(ver) > 2 else "?", "results": {}}
    shim = os.path.join(os.path.dirname(os.environ["RUNRS_BIN"]), "containerd-shim-runrs-v2")
    with open(shim, "rb") as f:
        res["runrs_shim"] = {"path": shim, "sha256": hashlib.sha256(f.read()).hexdigest()}
    res["host"], problems = preflight(n, containerd)
    log(f"N={n}, {par} at a time, runtimes {rts}; host {res['host']}")
    for p in problems:
        log(f"preflight: {p}")
    if problems:
        return 2
    bad = False
    try:
        for rt in rts:
            try:
                r = one_runtime(ctr, host, rt, n, par, containerd)
            except Exception as e:   # reported; the other runtime still runs
                log(f"{rt}: failed: {e}")
                res.setdefault("errors", {})[rt] = str(e)
                bad = True
                left = ctr.leftovers()
                if left:
                    ctr.remove(left)
                continue
            res["results"][rt] = r
            bad |= bool(r["leaks"] or r["failures"])
    finally:
        res["load_end"] = loadavg()
        write_results(out, "scale", res, fmt_table(res))
        log(f"wrote {out}/scale.json, {out}/scale.txt")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
