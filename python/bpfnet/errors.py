"""bpfnet's typed errors. The CLI maps each to an exit status and one line.

    raise ConfigError("VNI 0 is outside 1..16777215")   # exit 2
    raise NotFound("bridge is not loaded")               # exit 2
    raise KernelError("attach refused: ...")             # exit 1
"""


class BpfnetError(Exception):
    exit_code = 1


class ConfigError(BpfnetError, ValueError):
    """Bad input: the user can fix the command line."""
    exit_code = 2


class NotFound(ConfigError):
    """A device, namespace, function, VNI, peer or client that does not exist."""


class KernelError(BpfnetError):
    """The kernel or a helper refused."""
    exit_code = 1
