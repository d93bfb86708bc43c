"""One module per command group; each stays thin and imports its runbook lazily."""
