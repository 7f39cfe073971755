"""bpfnet: network functions in BPF (bridge, mesh, gateway, monitor) with a
thin ctypes binding to libbpf and pyroute2 for netlink."""

__version__ = "0.1.0"
