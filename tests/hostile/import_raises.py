raise ValueError("configure me first")
