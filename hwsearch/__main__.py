import sys

from hwsearch.cli import main

sys.exit(main())
