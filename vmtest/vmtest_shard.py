"""pytest plugin: share one test list between parallel VMs, a module at a time.

Every guest collects the same tests. Before running a test module a guest
claims it with an atomic mkdir in a directory all guests write through to the
host (--rwdir); the guest that wins runs the whole module, so module fixtures
are set up once, and a guest that is done with a slow module simply claims the
next free one (a shared queue, no guessing of weights).

    VMTEST_CLAIMS=build/vmtest/claims VMTEST_GUEST=vm0 \
        python -m pytest -p vmtest_shard tests/netns/test_bridge.py ...

Without VMTEST_CLAIMS the plugin does nothing. Each guest also writes the node
ids it collected to $VMTEST_CLAIMS/collected-<guest>.txt, so the runner can
check that every collected test ran in some guest.
"""
from __future__ import annotations

import os

import pytest


def _module_of(item) -> str:
    return item.nodeid.split("::", 1)[0]


def _claim(claims: str, module: str, guest: str) -> bool:
    d = os.path.join(claims, module.replace("/", "__"))
    try:
        os.mkdir(d)
    except FileExistsError:
        return False
    with open(os.path.join(d, f"{guest}.{os.getpid()}"), "w"):
        pass
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    claims = os.environ.get("VMTEST_CLAIMS")
    if not claims or session.config.option.collectonly:
        return None  # pytest's own loop
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} errors during collection")

    guest = os.environ.get("VMTEST_GUEST", "vm0")
    with open(os.path.join(claims, f"collected-{guest}.txt"), "w") as f:
        f.writelines(f"{it.nodeid}\n" for it in session.items)

    # Modules in collection order, end-to-end (netns) ones first: the longest
    # jobs go out first so the guests finish at about the same time.
    modules: dict[str, list] = {}
    for it in session.items:
        modules.setdefault(_module_of(it), []).append(it)
    queue = sorted(modules, key=lambda m: (0 if "/netns/" in m else 1))
    queue.reverse()  # pop() from the end

    def next_module():
        while queue:
            m = queue.pop()
            if _claim(claims, m, guest):
                return modules[m]
        return None

    mine = next_module()
    while mine:
        # claim the next module before the last test of this one, so that
        # pytest knows the real next item when it tears fixtures down
        following = None
        for i, item in enumerate(mine):
            if i + 1 < len(mine):
                nextitem = mine[i + 1]
            else:
                following = next_module()
                nextitem = following[0] if following else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
        mine = following
    return True
