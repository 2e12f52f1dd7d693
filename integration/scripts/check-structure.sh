#!/usr/bin/env bash
# Structural rules of the tree (issue 15), run by the lint stage of run-tests.sh:
#   1. one kernel boundary: no `unsafe` and no `libc::` path in runtime-core/src outside
#      runtime-core/src/sys/, nor in shim/src outside shim/src/sys.rs (the shim part only
#      warns until shim/src/sys.rs exists);
#   2. no .rs file over 600 lines in runtime-core/src or shim/src (LONG_OK lists the
#      files still waiting for their split: reported, not failed);
#   3. no import cycle between runtime-core's top-level modules (from `crate::x`
#      references; `sys` is a leaf by rule 1's design and must import nothing);
#   4. the shim and the runrs CLI use runtime-core only through its face: the names
#      runtime-core/src/lib.rs re-exports and its `host` facade, no module path;
#   5. no std `Command::spawn` (`.spawn()`) in runtime-core/src or shim/src outside
#      runtime-core's `reap::spawn` (runtime_core::spawn_command), test modules, the CLI
#      (no process-wide reaper) and the shim's `start` (before its reaper exists): std's
#      spawn panics when a failed exec's child was reaped by the shim's reaper first.
# Prints every offender and exits 1 when any rule fails. Usage: check-structure.sh [ROOT]
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"
exec python3 - <<'EOF'
import os
import re
import sys

MAX_LINES = 600
# Import cycles fail the check once runtime-core has none left (issue 15).
CYCLES_ENFORCED = True
# Files over MAX_LINES that are reported but do not fail the check (being split).
LONG_OK: set = set()

failed = False


def fail(msg):
    global failed
    failed = True
    print(f"check-structure: {msg}", file=sys.stderr)


def warn(msg):
    print(f"check-structure: warning: {msg}", file=sys.stderr)


def rust_files(root):
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def code_lines(path):
    """(line number, text without // comments and string contents) of a Rust file."""
    out = []
    in_block = 0
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            s = line
            # Block comments (not nested across lines beyond a counter).
            res = ""
            i = 0
            while i < len(s):
                if in_block:
                    j = s.find("*/", i)
                    if j < 0:
                        i = len(s)
                        break
                    in_block -= 1
                    i = j + 2
                    continue
                if s.startswith("/*", i):
                    in_block += 1
                    i += 2
                    continue
                if s.startswith("//", i):
                    break
                if s[i] == '"':
                    # Skip a string literal on this line (escapes honoured).
                    j = i + 1
                    while j < len(s) and s[j] != '"':
                        j += 2 if s[j] == "\\" else 1
                    res += '""'
                    i = j + 1
                    continue
                res += s[i]
                i += 1
            out.append((n, res))
    return out


# --- 1. the kernel boundary ---------------------------------------------------------
RAW = re.compile(r"\bunsafe\b|\blibc::")


def raw_uses(path):
    return [(n, t.strip()) for n, t in code_lines(path) if RAW.search(t)]


for path in rust_files("runtime-core/src"):
    if path.startswith("runtime-core/src/sys/"):
        continue
    for n, t in raw_uses(path):
        fail(f"{path}:{n}: `unsafe`/`libc::` outside runtime-core/src/sys/: {t}")

shim_sys = "shim/src/sys.rs"
shim_enforced = os.path.exists(shim_sys)
for path in rust_files("shim/src"):
    if path == shim_sys:
        continue
    uses = raw_uses(path)
    if shim_enforced:
        for n, t in uses:
            fail(f"{path}:{n}: `unsafe`/`libc::` outside {shim_sys}: {t}")
    elif uses:
        warn(f"{path}: {len(uses)} lines with `unsafe`/`libc::` ({shim_sys} does not exist yet)")

# --- 2. file sizes ------------------------------------------------------------------
for root in ("runtime-core/src", "shim/src"):
    for path in rust_files(root):
        with open(path, encoding="utf-8") as fh:
            n = sum(1 for _ in fh)
        if n > MAX_LINES:
            msg = f"{path}: {n} lines (at most {MAX_LINES})"
            fail(msg) if path not in LONG_OK else warn(msg + ", split pending")

# --- 3. module cycles ---------------------------------------------------------------
SRC = "runtime-core/src"
top = set()
for e in os.listdir(SRC):
    p = os.path.join(SRC, e)
    if e.endswith(".rs") and e not in ("lib.rs",):
        top.add(e[:-3])
    elif os.path.isdir(p) and e != "bin" and os.path.exists(os.path.join(p, "mod.rs")):
        top.add(e)
# Submodules declared as separate files of a top-level module (rdt_tests.rs is rdt's).
owner = {}
with open(os.path.join(SRC, "lib.rs"), encoding="utf-8") as fh:
    lib = fh.read()
for m in list(top):
    if not re.search(rf"\bmod\s+{re.escape(m)}\b", lib):
        top.discard(m)
REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)
graph = {m: set() for m in top}
where = {}


def module_of(path):
    rel = os.path.relpath(path, SRC)
    first = rel.split(os.sep)[0]
    name = first[:-3] if first.endswith(".rs") else first
    if name in top:
        return name
    # A file named e.g. rdt_tests.rs included with #[path] belongs to its owner.
    for m in top:
        if name.startswith(m + "_"):
            return m
    return None


def group_heads(g):
    """First path segment of each item of `use crate::{...}` (outer level only)."""
    heads, depth, item = set(), 0, ""
    for ch in g + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            m = re.match(r"\s*([a-z_][a-z0-9_]*)", item)
            if m:
                heads.add(m.group(1))
            item = ""
            continue
        if depth == 0 and ch not in "{}":
            item += ch
    return heads


for path in rust_files(SRC):
    if path.startswith(os.path.join(SRC, "bin")):
        continue
    m = module_of(path)
    if m is None:
        continue
    lines = code_lines(path)
    text = "\n".join(t for _, t in lines)
    refs = set(REF.findall(text))
    for g in USE_GROUP.findall(text):
        refs |= group_heads(g)
    for r in refs:
        if r in top and r != m:
            graph[m].add(r)
            where.setdefault((m, r), path)

for dep in sorted(graph.get("sys", ())):
    fail(f"runtime-core/src/sys imports crate::{dep} ({where[('sys', dep)]}): sys must be a leaf")

# Cycles: strongly connected components (Tarjan), each printed with one cycle in it.
index, low, stack, on, comps = {}, {}, [], set(), []
counter = [0]


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            comps.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        strong(v)


def one_cycle(comp):
    inside = set(comp)
    start = comp[0]
    # BFS back to start within the component.
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                path.reverse()
                return path + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


for comp in comps:
    cyc = one_cycle(comp)
    steps = ", ".join(f"{a} -> {b} ({where[(a, b)]})" for a, b in zip(cyc, cyc[1:]))
    (fail if CYCLES_ENFORCED else warn)(f"import cycle among runtime-core modules {{{', '.join(comp)}}}: {steps}")

# 4. the public face: the shim and the runrs CLI use runtime-core only through the names
#    runtime-core/src/lib.rs re-exports (and its `host` facade), never its modules.
lib = open("runtime-core/src/lib.rs").read()
modules = set(re.findall(r"^(?:pub(?:\(crate\))? )?mod (\w+);", lib, re.M)) - {"host"}
callers = list(rust_files("shim/src")) + list(rust_files("runtime-core/src/bin"))
for path in callers:
    text = open(path).read()
    for m in re.finditer(r"runtime_core::(\{[^}]*\}|\w+)", text):
        seg = m.group(1)
        if seg.startswith("{"):
            # The first path segment of each item of a group (`a`, `b as c`, `d::e`).
            heads = [i.strip().split("::")[0].split()[0] for i in seg.strip("{}").split(",") if i.strip()]
            bad = [h for h in heads if h in modules]
        else:
            bad = [seg] if seg in modules and text[m.end():m.end() + 2] == "::" else []
        if bad:
            line = text.count("\n", 0, m.start()) + 1
            fail(f"{path}:{line}: runtime_core::{bad[0]} is a module of runtime-core; use its face (the names runtime-core/src/lib.rs re-exports)")

# --- 5. std spawns go through reap::spawn ---------------------------------------------
SPAWN = re.compile(r"\.spawn\(\)")
SPAWN_OK = {"runtime-core/src/reap.rs", "shim/src/start.rs"}
for root in ("runtime-core/src", "shim/src"):
    for path in rust_files(root):
        if path in SPAWN_OK or path.startswith("runtime-core/src/bin/"):
            continue
        for n, t in code_lines(path):
            if re.match(r"\s*#\[cfg\(test\)\]", t):
                break
            if SPAWN.search(t):
                fail(f"{path}:{n}: `.spawn()` outside reap::spawn (runtime_core::spawn_command): {t.strip()}")

if failed:
    sys.exit(1)
print("check-structure: ok")
EOF
