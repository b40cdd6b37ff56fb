"""Policy: what may be granted to whom, and who must approve. Pure: no I/O."""
