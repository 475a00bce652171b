"""trainer-compat's test suite: a package, so that `tests.zoo` is ours even beside a wheel that ships a
top-level `tests` package (trl 0.12 does)."""
