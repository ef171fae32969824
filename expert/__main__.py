"""`python -m expert`: the `expert` command."""

from .cli import main

if __name__ == "__main__":
    main()
