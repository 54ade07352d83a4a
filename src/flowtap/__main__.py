import sys

from flowtap.cli import main

sys.exit(main())
