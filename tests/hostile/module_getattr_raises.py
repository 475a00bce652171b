def __getattr__(name):
    raise RuntimeError(f"lazy attribute {name} failed")
