"""Friends and blocks: LinkChat's own social graph, kept as facts in the account chains."""
