"""Review tooling for rule and fact changes: scenarios, rule examples, snapshots, audit, reference pages."""
