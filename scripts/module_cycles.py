#!/usr/bin/env python3
"""Module-level import graph of one crate's src/ (top-level modules), and its
cycles. Usage: scripts/module_cycles.py broker/src [--graph]

Counts `crate::m` paths anywhere in a module's files (uses, qualified paths)
and `super::m` from files one level down. Exit 1 when there is a cycle.
"""
import os, re, sys

src = sys.argv[1]
show = "--graph" in sys.argv
mods = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top in ("lib", "main"):
            continue
        text = open(path).read()
        # drop comments
        text = re.sub(r"//[^\n]*", "", text)
        deps = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", text))
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            deps |= set(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
        if os.sep in rel and rel.count(os.sep) == 1:
            deps |= set(re.findall(r"super::([a-z_][a-z0-9_]*)", text)) - {"super"}
        mods.setdefault(top, set()).update(d for d in deps if d != top)
known = set(mods)
graph = {m: sorted(d for d in ds if d in known) for m, ds in mods.items()}
if show:
    for m in sorted(graph):
        print(f"{m} -> {', '.join(graph[m]) or '-'}")
# cycles: strongly connected components with more than one node
index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            comps.append(sorted(comp))
for v in sorted(graph):
    if v not in index:
        strong(v)
for c in comps:
    print("cycle:", " <-> ".join(c))
sys.exit(1 if comps else 0)
