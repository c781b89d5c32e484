import sys

from hwsearch.commands import main

sys.exit(main())
