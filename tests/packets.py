"""The packet builders of bpfnet.packets, for the tests (the bench uses the
same ones): ``from packets import eth, ipv4, udp, pkt_v4``."""
from bpfnet.packets import *  # noqa: F401,F403
from bpfnet.packets import __all__  # noqa: F401
