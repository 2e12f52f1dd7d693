#!/usr/bin/env python3
"""containerd-config.py add|remove CONFIG [--print]

Add (or remove) the CRI runtime entry for runrs in an existing containerd config,
idempotently. The config is read with Python's tomllib to learn its version (2: containerd
1.x, plugin "io.containerd.grpc.v1.cri"; 3: containerd 2.x, "io.containerd.cri.v1.runtime")
and what the node's runc entry uses for SystemdCgroup; the entry is written as one block
between marker comments at the end of the file (TOML allows a table anywhere), so that
remove takes out exactly what add put in and nothing else of the operator's file changes.
If the config already defines a runrs runtime outside the markers, it is left alone.
Exit: 0 changed or nothing to do (prints which), 1 on an unreadable config.
"""
import os
import sys
import tomllib

BEGIN = "# BEGIN runrs (deploy/install.sh; deploy/uninstall.sh removes this block)"
END = "# END runrs"


def plugin_tables(cfg):
    version = cfg.get("version", 1)
    plugins = cfg.get("plugins", {})
    if version >= 3:
        return version, "io.containerd.cri.v1.runtime", plugins.get("io.containerd.cri.v1.runtime", {})
    return version, "io.containerd.grpc.v1.cri", plugins.get("io.containerd.grpc.v1.cri", {})


def strip_block(text):
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == BEGIN:
            inside = True
            # add put one blank line before the block
            if out and out[-1] == "\n":
                out.pop()
            continue
        if inside and line.rstrip("\n") == END:
            inside = False
            continue
        if not inside:
            out.append(line)
    return "".join(out)


def block(version, plugin, systemd):
    q = "'" if version >= 3 else '"'
    t = f"plugins.{q}{plugin}{q}.containerd.runtimes.runrs"
    lines = [
        BEGIN,
        f"[{t}]",
        f"  runtime_type = {q}io.containerd.runrs.v2{q}",
        # sd_notify readiness per container (annotation io.github.runrs.notify and its
        # timeout) reaches the shim only when the handler passes the annotations on.
        f"  container_annotations = [{q}io.github.runrs.*{q}]",
        f"[{t}.options]",
        f"  SystemdCgroup = {'true' if systemd else 'false'}",
        END,
    ]
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("add", "remove"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    action, path = sys.argv[1], sys.argv[2]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    base = strip_block(text)
    try:
        cfg = tomllib.loads(base)
    except tomllib.TOMLDecodeError as e:
        print(f"containerd-config: {path}: not valid TOML: {e}", file=sys.stderr)
        return 1
    if action == "remove":
        new = base
    else:
        if not text.strip():
            # No config yet: containerd 2.x reads version 3, 1.x version 2.
            cfg = {"version": int(os.environ.get("CONTAINERD_CONFIG_VERSION", "2"))}
            base = f"version = {cfg['version']}\n"
        version, plugin, cri = plugin_tables(cfg)
        runtimes = cri.get("containerd", {}).get("runtimes", {})
        if "runrs" in runtimes:
            print(f"{path}: a runrs runtime is already configured outside runrs' block; left alone")
            return 0
        runc = runtimes.get("runc", {}).get("options", {})
        systemd = bool(runc.get("SystemdCgroup", False))
        new = base.rstrip("\n") + "\n\n" + block(version, plugin, systemd)
    if new == text:
        print(f"{path}: unchanged")
        return 0
    tmp = path + ".runrs-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    if os.path.exists(path):
        st = os.stat(path)
        os.chmod(tmp, st.st_mode & 0o7777)
    os.replace(tmp, path)
    print(f"{path}: {'added the runrs runtime' if action == 'add' else 'removed the runrs runtime'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
