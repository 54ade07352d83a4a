"""``python -m flowtap.tools.demo``."""

from flowtap.tools.demo.run import main

raise SystemExit(main())
