"""What the tests share, by concern: assertions, device doubles, tiny models,
file faults, data. No test module imports another."""
