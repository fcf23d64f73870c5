"""Method adapters, one file each. The registry lines are ``progbench.protocol.BUILTIN``; see docs/ARCHITECTURE.md."""
