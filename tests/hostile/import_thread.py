import threading
import time

from guarded import _Base

threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()  # would keep the process alive


class Model(_Base):
    pass
