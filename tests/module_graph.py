#!/usr/bin/env python3
"""The module graph of brokerside: print it, and check that the code keeps to it.

The declared graph is the one CMakeLists.txt builds (one static library per
src/<module>/, linked to the modules it may use); CMake writes it to
<build>/module_graph.txt as lines "module: dep dep ...". A module's headers
live in include/<module>/brokerside/ (that directory is the owner), and each
library's PUBLIC include directory is include/<module>, so the compiler itself
sees only the headers of a module and of the modules it links. This script
checks:

  1. the declared graph has no cycle; every header lives in a module's
     include directory, and no two modules have a header of the same name;
  2. every #include "brokerside/X.h" in src/<module>/ (and in the headers a
     module owns) names a header of the module itself or of a module it may
     use (its declared dependencies, transitively);
  3. with --libs, every symbol a module's library uses from another module's
     library (nm) is allowed the same way;
  4. with --compile-check BUILD_DIR, the compiler agrees: for each module,
     its real compile command (BUILD_DIR/compile_commands.json) finds every
     header of the modules it may use and fails on every other header.

The build runs 1-3 (target module_graph, part of `all`), so a backwards
include or call fails the build; ctest runs the self-test (unit.module_graph)
and 4 (unit.module_graph_compile).

usage: module_graph.py --source DIR --declared FILE [--libs m=lib.a ...] [--dot]
       module_graph.py --source DIR --declared FILE --compile-check BUILD_DIR
       module_graph.py --self-test
"""
import argparse
import os
import json
import re
import shlex
import subprocess
import sys
import tempfile

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
    """(header name -> owning module, problems): a header's module is the
    include/<module>/ directory it lives in."""
    owners, problems = {}, []
    inc = os.path.join(source, "include")
    for mod in sorted(os.listdir(inc)):
        d = os.path.join(inc, mod, "brokerside")
        if not os.path.isdir(d):
            problems.append(f"include/{mod}: not a module include directory "
                            "(headers live in include/<module>/brokerside/)")
            continue
        for f in sorted(os.listdir(d)):
            name = f.split(".")[0]
            if name in owners:
                problems.append(f"include/{mod}/brokerside/{f}: brokerside/{name}.h also "
                                f"exists in include/{owners[name]}/")
                continue
            owners[name] = mod
    return owners, problems


def header_files(source, mod):
    """Paths of the headers in include/<mod>/brokerside/."""
    d = os.path.join(source, "include", mod, "brokerside")
    if not os.path.isdir(d):
        return []
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".h")]


def include_edges(source, owners, modules):
    """(module, file, header, header's module) for every include of a module's code."""
    edges = []
    src = os.path.join(source, "src")
    files = []
    for mod in modules:
        d = os.path.join(src, mod)
        if os.path.isdir(d):
            files += [(mod, os.path.join(d, f)) for f in sorted(os.listdir(d))
                      if f.endswith((".c", ".h", ".inc"))]
        files += [(mod, h) for h in header_files(source, mod)]
    for mod, path in files:
        with open(path, errors="replace") as fh:
            for h in INCLUDE_RE.findall(fh.read()):
                if h not in owners:
                    raise SystemExit(f"module_graph: {path}: no include/<module>/brokerside/ "
                                     f"has {h}.h")
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
    owners, owner_problems = header_owners(source)
    problems += owner_problems
    for h, hmod in sorted(owners.items()):
        if hmod not in graph:
            problems.append(f"include/{hmod}/brokerside/{h}.h: {hmod} is not a module")
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


def _compile_command(entry):
    """The argv of a compile_commands.json entry without its output and input
    (-o FILE, -c FILE, dependency-file options), ready for a probe."""
    argv = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("-o", "-c", "-MF", "-MT", "-MQ"):
            skip = True
        elif a in ("-MD", "-MMD") or a == entry["file"]:
            continue
        else:
            out.append(a)
    return out


def compile_check(source, graph, build_dir, jobs=2):
    """Problems where the compiler disagrees with the graph: for each module,
    preprocess `#include "brokerside/X.h"` with that module's real compile
    command (the first of its sources in build_dir/compile_commands.json);
    it must find every header of the modules it may use and no other."""
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    allowed = closure(graph)
    owners, problems = header_owners(source)
    commands = {}
    for e in entries:
        rel = os.path.relpath(os.path.realpath(e["file"]), os.path.realpath(source))
        parts = rel.split(os.sep)
        if len(parts) == 3 and parts[0] == "src" and parts[1] in graph:
            commands.setdefault(parts[1], e)
    jobs_list = []
    with tempfile.TemporaryDirectory() as tmp:
        for h in sorted(owners):
            probe = os.path.join(tmp, h + ".c")
            with open(probe, "w") as f:
                f.write(f'#include "brokerside/{h}.h"\n')
        for mod in sorted(graph):
            if mod not in commands:
                if os.path.isdir(os.path.join(source, "src", mod)):
                    problems.append(f"{mod}: no compile command in {build_dir}")
                continue
            argv = _compile_command(commands[mod])
            for h, hmod in sorted(owners.items()):
                jobs_list.append((mod, h, hmod, commands[mod]["directory"],
                                  argv + ["-E", "-o", os.devnull, os.path.join(tmp, h + ".c")]))

        def run(job):
            mod, h, hmod, cwd, argv = job
            r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
            want = hmod in allowed[mod]
            if want and r.returncode != 0:
                first = (r.stderr.strip().splitlines() or ["?"])[0]
                return (f"{mod} cannot include brokerside/{h}.h of {hmod}, which the graph "
                        f"allows: {first}")
            if not want and r.returncode == 0:
                return (f"{mod}'s compile command finds brokerside/{h}.h of {hmod}, against "
                        "the graph (its include directories leak)")
            if not want and "brokerside/" + h + ".h" not in r.stderr:
                return (f"{mod} including brokerside/{h}.h of {hmod} failed for another reason: "
                        + (r.stderr.strip().splitlines() or ["?"])[0])
            return None

        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            problems += [p for p in pool.map(run, jobs_list) if p]
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


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _make_tree(tmp, sources):
    """A two-module tree under tmp: include/<m>/brokerside/<m>.h and
    src/<m>/<m>.c with the given text, for m in sources."""
    for mod, text in sources.items():
        _write(os.path.join(tmp, "src", mod, mod + ".c"), text)
        _write(os.path.join(tmp, "include", mod, "brokerside", mod + ".h"),
               f"int {mod}(void);\n")


def self_test():
    """The checks catch a cycle, a backwards include, a backwards call, a
    header outside a module's directory or in two modules, and include
    directories that let a module see what the graph forbids."""
    cc = os.environ.get("CC", "cc")
    ok = {"low": [], "high": ["low"]}
    with tempfile.TemporaryDirectory() as tmp:
        _make_tree(tmp, {"low": '#include "brokerside/high.h"\nint low(void){return 0;}\n',
                         "high": '#include "brokerside/low.h"\nint high(void){return 1;}\n'})
        probs = check(tmp, ok, {})
        assert len(probs) == 1 and "low includes brokerside/high.h of high" in probs[0], probs
        cyc = {"low": ["high"], "high": ["low"]}
        probs = check(tmp, cyc, {})
        assert any("cycle: " in p for p in probs), probs
        # A header directly under include/, and one name in two modules.
        _write(os.path.join(tmp, "include", "brokerside", "stray.h"), "")
        _write(os.path.join(tmp, "include", "high", "brokerside", "low.h"), "")
        probs = check(tmp, ok, {})
        assert any("include/brokerside: not a module include directory" in p for p in probs), probs
        assert any("brokerside/low.h also exists in include/" in p for p in probs), probs

    # A backwards call (nm over real static libraries): low calls high's
    # function without including its header; high's call of low is allowed.
    with tempfile.TemporaryDirectory() as tmp:
        _make_tree(tmp, {"low": "int high(void);\nint low(void){return high();}\n",
                         "high": '#include "brokerside/low.h"\nint high(void){return low();}\n'})
        libs = {}
        for mod in ("low", "high"):
            obj = os.path.join(tmp, mod + ".o")
            subprocess.run([cc, "-I", os.path.join(tmp, "include", mod), "-I",
                            os.path.join(tmp, "include", "low"), "-c", "-o", obj,
                            os.path.join(tmp, "src", mod, mod + ".c")], check=True)
            libs[mod] = os.path.join(tmp, "lib" + mod + ".a")
            subprocess.run(["ar", "rcs", libs[mod], obj], check=True)
        probs = check(tmp, ok, libs)
        assert probs == ["low uses high of high, against the graph"], probs
        probs = check(tmp, {"low": ["high"], "high": []}, libs)
        assert "high uses low of low, against the graph" in probs, probs
        assert not any(p.startswith("low uses") for p in probs), probs

    # The compiler check: include directories as the graph says pass; low's
    # command seeing high's directory, or high's missing low's, fail.
    with tempfile.TemporaryDirectory() as tmp:
        _make_tree(tmp, {"low": "int low(void){return 0;}\n",
                         "high": '#include "brokerside/low.h"\nint high(void){return 1;}\n'})
        inc = {m: "-I" + os.path.join(tmp, "include", m) for m in ("low", "high")}

        def commands(low_flags, high_flags):
            build = os.path.join(tmp, "build")
            entries = [{"directory": tmp, "file": os.path.join(tmp, "src", m, m + ".c"),
                        "command": " ".join([cc] + flags + ["-o", m + ".o", "-c",
                                                            os.path.join(tmp, "src", m, m + ".c")])}
                       for m, flags in (("low", low_flags), ("high", high_flags))]
            _write(os.path.join(build, "compile_commands.json"), json.dumps(entries))
            return build

        good = commands([inc["low"]], [inc["high"], inc["low"]])
        assert compile_check(tmp, ok, good) == [], compile_check(tmp, ok, good)
        leaky = commands([inc["low"], inc["high"]], [inc["high"], inc["low"]])
        probs = compile_check(tmp, ok, leaky)
        assert len(probs) == 1 and "low's compile command finds brokerside/high.h" in probs[0], probs
        short = commands([inc["low"]], [inc["high"]])
        probs = compile_check(tmp, ok, short)
        assert len(probs) == 1 and "high cannot include brokerside/low.h of low" in probs[0], probs
    print("module_graph self-test: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source")
    ap.add_argument("--declared")
    ap.add_argument("--libs", nargs="*", default=[], help="module=path/to/lib.a")
    ap.add_argument("--dot", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--compile-check", metavar="BUILD_DIR",
                    help="check that each module's compile command sees only allowed headers")
    a = ap.parse_args()
    if a.self_test:
        self_test()
        return 0
    graph = read_declared(a.declared)
    libs = dict(x.split("=", 1) for x in a.libs)
    if a.compile_check:
        problems = compile_check(a.source, graph, a.compile_check)
    else:
        problems = check(a.source, graph, libs)
    if not a.quiet or a.dot:
        print_graph(graph, a.dot)
    for p in problems:
        print("module_graph: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
