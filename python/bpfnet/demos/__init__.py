"""`bpfnetctl demo NAME`: one module per demo, each with
``run(keep: bool, say) -> int`` (``say`` prints a line)."""

DEMOS = ("bridge", "mesh", "dhcp", "gateway", "monitor", "cluster")


def answered(rows: list[dict]) -> str:
    """'R/S pings answered' over rows with "sent" and "received"."""
    return f"{sum(r['received'] for r in rows)}/{sum(r['sent'] for r in rows)} pings answered"


def finish(sim, say, ok: bool, summary: str, keep: bool = False, extra: str = "") -> int:
    """Every demo's closing: ``# SUMMARY: PASS`` (or FAIL); with ``--keep`` the
    simulation is then held until a signal (the caller's ``finally`` removes
    it). Returns the exit code: 0 on PASS, 1 on FAIL."""
    say(f"# {summary}: " + ("PASS" if ok else "FAIL"))
    if keep:
        sim.hold(say, extra=extra)
    return 0 if ok else 1
