"""`python -m expert`: the `expert` command."""

from .entry import main

if __name__ == "__main__":
    main()
