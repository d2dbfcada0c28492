"""Developer tools that are not part of the factory's services (fixtures, demo data, operator scripts)."""
