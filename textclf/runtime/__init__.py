"""Where code runs: the Ray session, arithmetic precision, progress reporting, fault injection."""
