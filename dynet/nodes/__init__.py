"""Graph nodes, one module per family (as DyNet's nodes-*.cc). Each node type checks its arguments'
dimensions when it is created (naming the operation and the dimensions in the error), and implements
`forward` and `backward` on raw buffers; look-alike nodes (elementwise maps) are rows of a table."""
