"""Task applications built on the engine: data sets, LocNet, reports and the command line."""
