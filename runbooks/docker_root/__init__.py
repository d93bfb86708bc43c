"""docker-root: move Docker's data-root safely (status, plan, move, verify, rollback, cleanup)."""
