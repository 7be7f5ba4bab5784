import sys

from core.device import set_wait_policy

set_wait_policy()  # the worker's passive OpenMP wait, before torch loads; the counts are chosen per case (runner)

from .runner import main  # noqa: E402

sys.exit(main())
