import sys

from flowtap.console import flowtapd

sys.exit(flowtapd())
