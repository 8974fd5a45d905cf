"""The core: dimensions, memory pools, the computation graph, parameters and configuration."""
