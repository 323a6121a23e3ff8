"""`python -m trust verify BUNDLE --jwks JWKS`: see trust/cli.py."""
import sys

from trust.cli import main

sys.exit(main())
