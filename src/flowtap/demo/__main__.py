"""``python -m flowtap.demo``."""

from flowtap.demo.run import main

raise SystemExit(main())
