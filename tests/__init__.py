"""trainer-compat's test suite (a package, so that `tests.zoo` is ours even beside a wheel that ships a top-level `tests`, as trl 0.12 does)."""
