import os

os.fork()  # both copies go on: the error must be printed once
raise ValueError("forked and failed")
