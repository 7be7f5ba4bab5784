import sys

from .device import set_wait_policy

set_wait_policy()  # before anything imports torch or cv2: their thread pools read it once, when they load

from .cli import main  # noqa: E402

sys.exit(main())
