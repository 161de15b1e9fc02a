"""What every layer of the hub shares: the envelope, operation names, problems, the clock,
the client identity and the hub's own Thing ids. It imports nothing of the hub."""
