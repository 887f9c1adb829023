"""The group commit of verified callbacks: the batch rules (one explicit I/O seam) and the drivers that run them."""
