from pyrocausal.cli import main

raise SystemExit(main())
