"""Command-line sub-commands, one module per function plus core and demo.
Each module has ``register(cli)``, adding its parsers to :class:`bpfnet.cli.Cli`."""
