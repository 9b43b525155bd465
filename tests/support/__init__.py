"""What the test tiers share: fakes, builders, servers, test hosts; `resources` is the
per-test resource monitor plugin."""
