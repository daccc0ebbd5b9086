"""RunSpecs (content-addressed run ids) and run directories."""
