"""Distribution on every backend: strategies and precision, multi-worker set-up, replica
shares of losses, and synchronised BatchNorm. Imports nothing above `losses`."""
