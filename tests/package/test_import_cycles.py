"""No import cycles between segstudio's modules. Every import counts: one inside a function, or
under TYPE_CHECKING, ties two modules together as much as one at the top of the file does."""

from collections import deque

import pytest

grimp = pytest.importorskip("grimp")  # installed with import-linter (the test extra)


def cycles(graph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        return module, iter(sorted(graph.find_modules_directly_imported_by(module)))

    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [visit(root)]
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    work.append(visit(other))
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:  # every import of `module` seen
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = set()
                    while module not in component:
                        component.add(stack.pop())
                    on_stack -= component
                    if len(component) > 1:
                        found.append(component)
    return found


def describe(graph, component: set[str]) -> str:
    """One cycle through the component, each import with its file line."""
    start = min(component)
    previous = {start: None}
    queue = deque([start])
    while queue:  # the shortest way from `start` back to it, inside the component
        module = queue.popleft()
        if start in graph.find_modules_directly_imported_by(module):
            path = [start]
            while module is not None:
                path.append(module)
                module = previous[module]
            break
        for other in sorted(graph.find_modules_directly_imported_by(module) & component):
            if other not in previous:
                previous[other] = module
                queue.append(other)
    path.reverse()
    steps = []
    for importer, imported in zip(path, path[1:]):
        detail = graph.get_import_details(importer=importer, imported=imported)[0]
        steps.append(f"  {importer} -> {imported}  (line {detail['line_number']}: {detail['line_contents']})")
    return "\n".join(steps)


def test_no_import_cycles():
    graph = grimp.build_graph("segstudio", cache_dir=None)
    found = [describe(graph, c) for c in sorted(cycles(graph), key=sorted)]
    assert not found, "import cycles:\n" + "\n\n".join(found)


def test_cycles_are_found_with_their_imports():
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.d", "p.a"),
                               ("p.e", "p.f"), ("p.f", "p.e"), ("p.c", "p.g")]:
        graph.add_import(importer=importer, imported=imported, line_number=3, line_contents=f"import {imported}")
    assert sorted(map(sorted, cycles(graph))) == [["p.a", "p.b", "p.c"], ["p.e", "p.f"]]
    assert describe(graph, {"p.a", "p.b", "p.c"}).splitlines() == [
        "  p.a -> p.b  (line 3: import p.b)", "  p.b -> p.c  (line 3: import p.c)",
        "  p.c -> p.a  (line 3: import p.a)"]
