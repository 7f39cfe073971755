"""`bpfnetctl demo NAME`: one module per demo, each with
``run(keep: bool, say) -> int`` (``say`` prints a line)."""

DEMOS = ("bridge", "mesh", "dhcp", "gateway", "monitor", "cluster")
