import sys

from channelmodel.cli import main

sys.exit(main())
