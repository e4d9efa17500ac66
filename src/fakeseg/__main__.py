from fakeseg.cli import main

raise SystemExit(main())
