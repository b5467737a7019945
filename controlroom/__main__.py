from controlroom.daemon.cli import main

raise SystemExit(main())
