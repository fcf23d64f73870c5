"""Method adapters, one file each. The registry lines are ``bench.protocol.BUILTIN``; see docs/ARCHITECTURE.md."""
