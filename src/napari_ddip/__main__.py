"""``python -m napari_ddip`` is the command line (also under ``torchrun``)."""

from napari_ddip.cli import main

raise SystemExit(main())
