import sys

from trainer_compat.cli import main

sys.exit(main())
