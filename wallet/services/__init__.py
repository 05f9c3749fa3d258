"""Use cases: they take their collaborators as arguments and never read the environment."""
