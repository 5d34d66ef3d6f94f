"""`python -m streaming`: run the streaming job as a Spark client-mode driver."""

import sys

from streaming.job import main

sys.exit(main())
