"""``python -m advlab ...``: the ``advlab`` command (handy under launchers: ``torchrun -m advlab``)."""

from advlab.cli.main import run

if __name__ == "__main__":
    run()
