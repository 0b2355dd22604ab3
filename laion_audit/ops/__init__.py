"""Running the project: settings, offline environment, provenance, the demo and the command line."""
