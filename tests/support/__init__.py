"""Helpers shared by the test tiers: test hosts, servers."""
