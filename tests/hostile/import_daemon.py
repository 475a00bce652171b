import os
import subprocess
import sys

proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
with open(os.environ["TC_HOSTILE_MARKER"], "w") as fh:
    fh.write(str(proc.pid))

from guarded import _Base  # noqa: E402


class Model(_Base):
    pass
