"""Benchmarks of trialwatch (``make bench``); tooling outside the shipped package."""
