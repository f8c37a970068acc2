#!/usr/bin/env python3
"""The module graph of brokerside: print it, and check that the code keeps to it.

The declared graph is the one CMakeLists.txt builds (one static library per
src/<module>/, linked to the modules it may use); CMake writes it to
<build>/module_graph.txt as lines "module: dep dep ...". This script checks:

  1. the declared graph has no cycle;
  2. every #include "brokerside/X.h" in src/<module>/ (and in the headers a
     module owns) names a header of the module itself or of a module it may
     use (its declared dependencies, transitively);
  3. with --libs, every symbol a module's library uses from another module's
     library (nm) is allowed the same way.

The build runs it (target module_graph, part of `all`), so a backwards
include or call fails the build; tests/unit runs its self-test.

usage: module_graph.py --source DIR --declared FILE [--libs m=lib.a ...] [--dot]
       module_graph.py --self-test
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

# Headers whose module is not "the src/<module>/ that has a .c of the same name".
HEADER_OWNERS = {
    "session": "net", "net": "net", "status": "core", "version": "core",
    "config": "core", "config_tables": "core", "aws_credentials": "aws", "aws_http": "aws",
    "aws_sinks": "sinks", "keyring": "crypto", "kafka_compression": "kafka",
}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"brokerside/([A-Za-z0-9_]+)\.h"', re.M)


def read_declared(path):
    graph = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mod, _, deps = line.partition(":")
            graph[mod.strip()] = deps.split()
    for mod, deps in graph.items():
        for d in deps:
            if d not in graph:
                raise SystemExit(f"module_graph: {mod} depends on unknown module {d}")
    return graph


def find_cycle(graph):
    """A list of modules forming a cycle, or None."""
    state = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in graph[m]:
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


def closure(graph):
    """module -> every module it may use (itself included)."""
    out = {}
    for m in graph:
        seen, todo = {m}, [m]
        while todo:
            for d in graph[todo.pop()]:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        out[m] = seen
    return out


def header_owners(source):
    owners = dict(HEADER_OWNERS)
    src = os.path.join(source, "src")
    for mod in sorted(os.listdir(src)):
        d = os.path.join(src, mod)
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f.endswith(".c"):
                owners.setdefault(f[:-2], mod)
    return owners


def include_edges(source, owners, modules):
    """(module, file, header, header's module) for every include of a module's code."""
    edges = []
    src = os.path.join(source, "src")
    inc = os.path.join(source, "include", "brokerside")
    files = []
    for mod in modules:
        d = os.path.join(src, mod)
        if os.path.isdir(d):
            files += [(mod, os.path.join(d, f)) for f in sorted(os.listdir(d))
                      if f.endswith((".c", ".h", ".inc"))]
    for f in sorted(os.listdir(inc)):
        name = f.split(".")[0]
        if f.endswith(".h") and owners.get(name) in modules:
            files.append((owners[name], os.path.join(inc, f)))
    for mod, path in files:
        with open(path, errors="replace") as fh:
            for h in INCLUDE_RE.findall(fh.read()):
                if h not in owners:
                    raise SystemExit(f"module_graph: {path}: no module owns brokerside/{h}.h "
                                     "(add it to HEADER_OWNERS)")
                edges.append((mod, os.path.relpath(path, source), h, owners[h]))
    return edges


def nm_symbols(lib):
    """(defined, undefined) global symbols of a static library."""
    out = subprocess.run(["nm", "-P", "-g", lib], check=True, capture_output=True,
                         text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0].endswith(":") or parts[0].endswith("]"):
            continue
        (undefined if parts[1] == "U" else defined).add(parts[0])
    return defined, undefined


def symbol_edges(libs):
    """(module, symbol, defining module) for every cross-module call or use."""
    owner, uses = {}, {}
    for mod, lib in libs.items():
        d, u = nm_symbols(lib)
        uses[mod] = u
        for s in d:
            owner.setdefault(s, mod)
    return [(m, s, owner[s]) for m in sorted(uses) for s in sorted(uses[m])
            if s in owner and owner[s] != m]


def check(source, graph, libs):
    problems = []
    cyc = find_cycle(graph)
    if cyc:
        problems.append("the declared module graph has a cycle: " + " -> ".join(cyc))
    allowed = closure(graph)
    owners = header_owners(source)
    for mod, path, h, hmod in include_edges(source, owners, graph):
        if hmod not in graph:
            problems.append(f"{path}: includes brokerside/{h}.h of {hmod}, which is not a module")
        elif hmod not in allowed[mod]:
            problems.append(f"{path}: {mod} includes brokerside/{h}.h of {hmod}, against the "
                            f"graph ({mod} may use: {' '.join(sorted(allowed[mod] - {mod}))})")
    for mod, sym, smod in symbol_edges(libs):
        if smod not in allowed.get(mod, {mod}):
            problems.append(f"{mod} uses {sym} of {smod}, against the graph")
    return problems


def print_graph(graph, dot):
    if dot:
        print("digraph brokerside {")
        for m in sorted(graph):
            for d in graph[m]:
                print(f'  "{m}" -> "{d}";')
        print("}")
        return
    # Layers: a module sits one above the highest module it uses.
    level = {}

    def lv(m):
        if m not in level:
            level[m] = 1 + max((lv(d) for d in graph[m]), default=-1)
        return level[m]

    for m in graph:
        lv(m)
    for n in range(max(level.values()) + 1):
        mods = sorted(m for m in graph if level[m] == n)
        print(f"layer {n}: " + ", ".join(f"{m} -> {' '.join(graph[m]) or '(libc, libraries)'}"
                                           for m in mods))


def self_test():
    """The checks catch a cycle, a backwards include and a backwards call."""
    with tempfile.TemporaryDirectory() as tmp:
        for mod, text in {"low": '#include "brokerside/high.h"\nint low(void){return 0;}\n',
                          "high": '#include "brokerside/low.h"\nint high(void){return 1;}\n'}.items():
            os.makedirs(os.path.join(tmp, "src", mod))
            with open(os.path.join(tmp, "src", mod, mod + ".c"), "w") as f:
                f.write(text)
        os.makedirs(os.path.join(tmp, "include", "brokerside"))
        for h in ("low", "high"):
            open(os.path.join(tmp, "include", "brokerside", h + ".h"), "w").close()
        ok = {"low": [], "high": ["low"]}
        probs = check(tmp, ok, {})
        assert len(probs) == 1 and "low includes brokerside/high.h of high" in probs[0], probs
        cyc = {"low": ["high"], "high": ["low"]}
        probs = check(tmp, cyc, {})
        assert any("cycle: " in p for p in probs), probs
    print("module_graph self-test: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source")
    ap.add_argument("--declared")
    ap.add_argument("--libs", nargs="*", default=[], help="module=path/to/lib.a")
    ap.add_argument("--dot", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        self_test()
        return 0
    graph = read_declared(a.declared)
    libs = dict(x.split("=", 1) for x in a.libs)
    problems = check(a.source, graph, libs)
    if not a.quiet or a.dot:
        print_graph(graph, a.dot)
    for p in problems:
        print("module_graph: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
